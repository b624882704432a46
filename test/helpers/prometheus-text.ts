// Test helper: Prometheus text exposition read by a real parser, Debian's python3-prometheus-client (run with
// /usr/bin/python3, whose site packages hold it), and a scrape of a running daemon's /metrics through it.
// Touches: one python3 child per call, an HTTP GET on loopback; fails loudly when the parser is missing.

import { spawnSync } from 'node:child_process';

export type Sample = { name: string; labels: Record<string, string>; value: number };
export type MetricFamily = { name: string; type: string; help: string; samples: Sample[] };
export type Scrape = { status: number; contentType: string | null; families: MetricFamily[]; samples: Sample[] };

const PARSE_SCRIPT = `
import json, math, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)} for s in f.samples]})
print(json.dumps(out))
`;

/** Every metric family in `text`; throws with the parser's complaint when the text is not valid exposition format. */
export function parsePrometheusText(text: string): MetricFamily[] {
  const run = spawnSync('/usr/bin/python3', ['-c', PARSE_SCRIPT], { input: text, encoding: 'utf8', timeout: 20_000 });
  if (run.status === 3 || run.error) {
    throw new Error(
      `python3-prometheus-client is not installed for /usr/bin/python3${run.error ? ` (${run.error.message})` : ''}; ` +
        'install it with: DEBIAN_FRONTEND=noninteractive apt-get install -y python3-prometheus-client',
    );
  }
  if (run.status !== 0) throw new Error(`not valid Prometheus text: ${run.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
  return JSON.parse(run.stdout) as MetricFamily[];
}

/** GET /metrics at `address`, parsed. */
export async function scrape(address: { host: string; port: number }): Promise<Scrape> {
  const res = await fetch(`http://${address.host}:${address.port}/metrics`);
  const families = parsePrometheusText(await res.text());
  return { status: res.status, contentType: res.headers.get('content-type'), families, samples: families.flatMap((f) => f.samples) };
}

/** The value of the sample `name` with exactly `labels` (0 when absent: a counter not yet touched). */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const keys = Object.keys(labels);
  const found = samples.find(
    (s) => s.name === name && Object.keys(s.labels).length === keys.length && keys.every((k) => s.labels[k] === labels[k]),
  );
  return found?.value ?? 0;
}

/** The samples named `name`, as "label=value,… value" strings (labels by name) sorted: readable in a failing expectation. */
export function seriesOf(samples: Sample[], name: string): string[] {
  return samples
    .filter((s) => s.name === name)
    .map((s) => `${Object.keys(s.labels).sort().map((k) => `${k}=${s.labels[k]}`).join(',')} ${s.value}`)
    .sort();
}
