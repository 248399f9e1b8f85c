import type { AudioPipeline } from '../../audio/pipeline.js';
import type { ConversionLimiter } from '../../audio/limiter.js';
import type { Config } from '../../config.js';
import type { RecordRepository } from '../../db/records.js';
import type { UserRepository } from '../../db/users.js';
import type { LocalStorage } from '../../storage/local.js';

/** Everything the routes may touch, built once by buildApp. */
export interface Services {
  readonly config: Config;
  readonly users: UserRepository;
  readonly records: RecordRepository;
  readonly storage: LocalStorage;
  readonly pipeline: AudioPipeline;
  readonly limiter: ConversionLimiter;
}
