/** The part of a pino logger the services use, so that they never depend on the web framework's type. */
export interface Logger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}
