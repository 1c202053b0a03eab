import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { isSubscription, withAuthorization } from './fetcher.js';

describe('the playground fetcher', () => {
  it('recognises subscriptions, named or not, and the chosen operation of several', () => {
    expect(isSubscription(parse('subscription { jobUpdated(id: "1") { status } }'), undefined)).toBe(true);
    const several = parse('query Me { me { id } } subscription Watch { myJobUpdates { id } }');
    expect(isSubscription(several, 'Watch')).toBe(true);
    expect(isSubscription(several, 'Me')).toBe(false);
  });

  it("adds the bar's token as a bearer token unless the headers editor sets Authorization", () => {
    expect(withAuthorization({}, 'abc')).toEqual({ authorization: 'Bearer abc' });
    expect(withAuthorization({}, 'Bearer abc')).toEqual({ authorization: 'Bearer abc' });
    expect(withAuthorization({ Authorization: 'Bearer mine' }, 'abc')).toEqual({ Authorization: 'Bearer mine' });
    expect(withAuthorization({ 'x-extra': '1' }, undefined)).toEqual({ 'x-extra': '1' });
  });
});
