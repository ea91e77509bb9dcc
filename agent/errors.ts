// Errors the CLI reports as `aca: <message>` with exit code 2 (no stack trace). Kept in a module
// of their own so that the CLI can recognise them without loading gRPC or the dataplane.
export class PushError extends Error {}
