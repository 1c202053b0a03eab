// The offline GraphQL playground: GraphiQL bundled at build time, served by the gateway at /playground.
import 'graphiql/style.css';
import './playground.css';
import { GraphiQL } from 'graphiql';
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { defaultQuery, defaultVariables } from './default-query.js';
import { createPlaygroundFetcher } from './fetcher.js';

// The token lives for this tab only; the converter page keeps its own sign-in.
const TOKEN_KEY = 'vidmp3.playground.token';

const tokenForm = element('#token-form', HTMLFormElement);
const tokenInput = element('#token', HTMLInputElement);
const tokenHelp = element('#token-help', HTMLElement);
const showToken = (token: string | null) => {
  tokenHelp.textContent = token ? 'Sent as Authorization: Bearer … (HTTP and WebSocket)' : 'No token: anonymous';
};
tokenInput.value = sessionStorage.getItem(TOKEN_KEY) ?? '';
showToken(tokenInput.value);
tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  showToken(token);
});
element('#token-clear', HTMLButtonElement).addEventListener('click', () => {
  tokenInput.value = '';
  sessionStorage.removeItem(TOKEN_KEY);
  showToken(null);
  tokenInput.focus();
});

const endpoint = new URL('/graphql', location.href);
const socketEndpoint = new URL(endpoint);
socketEndpoint.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';
const fetcher = createPlaygroundFetcher({
  url: endpoint.href,
  subscriptionUrl: socketEndpoint.href,
  // What is typed in the field counts even before "Use" is pressed.
  token: () => tokenInput.value.trim() || undefined,
});

// Links can carry an operation: /playground?query=…&variables=…
const params = new URLSearchParams(location.search);
const linked = params.get('query');
createRoot(element('#graphiql', HTMLElement)).render(
  createElement(GraphiQL, {
    fetcher,
    defaultTabs: [{ query: defaultQuery, variables: defaultVariables }],
    ...(linked !== null && { query: linked, variables: params.get('variables') ?? '' }),
    shouldPersistHeaders: false,
    isHeadersEditorEnabled: true,
  }),
);

function element<T extends Element>(selector: string, type: new () => T): T {
  const found = document.querySelector(selector);
  if (!(found instanceof type)) throw new Error(`the playground page has no ${selector}`);
  return found;
}
