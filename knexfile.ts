// For the knex command line (npx knex migrate:status …); Gatehouse itself migrates on start
// and with `npm run -s cli -- migrate`.
import { loadConfig } from './src/config.ts';
import { knexConfig } from './src/db.ts';

export default knexConfig(loadConfig().database);
