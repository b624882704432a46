// The image's HEALTHCHECK: exit 0 when dkimgate's /healthz answers 200 within 4 s, else 1 (docker's contract).
// Asks the metrics address of the effective configuration (the file plus DKIMGATE_* overrides), on loopback
// when it is a wildcard address. Touches: the config file, one HTTP request.

import { loadCliConfig } from '../dist/cli/config-option.js';

let metrics;
try {
  ({ config: { metrics } } = await loadCliConfig(undefined));
} catch (err) {
  console.error(`healthcheck: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
if (metrics === null) {
  console.error('healthcheck: metrics is off, so there is no /healthz to ask; set metrics: { host, port } in the config or DKIMGATE_METRICS=HOST:PORT');
  process.exit(1);
}
const host = metrics.host === '0.0.0.0' ? '127.0.0.1' : metrics.host === '::' ? '[::1]' : metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host;
const url = `http://${host}:${metrics.port}/healthz`;
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(4000) });
  const body = await response.text();
  if (!response.ok) console.error(`healthcheck: ${url} answered ${response.status} ${body.slice(0, 200)}`);
  process.exit(response.ok ? 0 : 1);
} catch (err) {
  console.error(`healthcheck: ${url} did not answer: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
