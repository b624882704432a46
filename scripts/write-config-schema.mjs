// Writes config/dkimgate.schema.json from the TypeScript config schema (run after `npm run build`).
// Touches: dist/config/json-schema.js (read) and config/dkimgate.schema.json (written).

import { writeFile } from 'node:fs/promises';

const { configJsonSchema } = await import(new URL('../dist/config/json-schema.js', import.meta.url).href);
const target = new URL('../config/dkimgate.schema.json', import.meta.url);
await writeFile(target, JSON.stringify(configJsonSchema(), null, 2) + '\n');
process.stderr.write(`wrote ${target.pathname}\n`);
