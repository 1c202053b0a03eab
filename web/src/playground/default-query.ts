// What a first visit shows: a short tour of the API, runnable as written (pick an operation with the run button).
export const defaultQuery = `# Welcome to the vidmp3 API playground.
#
# 1. Run SignUp (or LogIn) with your own email and a password of 10+ characters,
#    then paste the accessToken into "Access token" above.
# 2. Run Me and MyJobs; open the docs (the book icon) to see every type and field.
# 3. Start WatchJob with a job id in the variables: it shows the job's state, then
#    every change until the job finishes.
# Uploading a video needs a multipart request: use the converter page, the SDK or the CLI.

mutation SignUp {
  signUp(email: "you@example.com", password: "choose a long passphrase") {
    accessToken
    expiresAt
    user { id email }
  }
}

mutation LogIn {
  logIn(email: "you@example.com", password: "choose a long passphrase") {
    accessToken
    expiresAt
  }
}

query Me {
  me { id email createdAt }
}

query MyJobs {
  me {
    jobs(first: 10) {
      edges {
        node { id status progress createdAt input { filename } output { filename downloadUrl } error { code message } }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}

subscription WatchJob($id: ID!) {
  jobUpdated(id: $id) { id status progress error { code message } output { downloadUrl } }
}
`;

export const defaultVariables = `{
  "id": "a job id from MyJobs"
}
`;
