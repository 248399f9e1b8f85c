import { ProblemDetails } from './api-schemas.js';

/** Either form of the access token, as the OpenAPI document names them. */
export const TOKEN_SECURITY: Array<Record<string, string[]>> = [{ bearer: [] }, { accessToken: [] }];

/** Response schemas for the given error statuses, all problem+json. */
export const problemResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [status, ProblemDetails]));
