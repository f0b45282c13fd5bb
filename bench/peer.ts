/**
 * The peer to beat (DESIGN §14): its own measure script, run as it is, right before the relay's
 * phases, so that the figures a note compares were taken in the same minute on the same machine.
 * The script prints one JSON line on stdout; its other output goes to the progress log.
 */
import { spawn } from 'node:child_process';
import { log } from './children.ts';

export async function runPeer(script: string, timeoutMs = 10 * 60_000): Promise<Record<string, unknown>> {
  const startedAt = new Date();
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) log(`[peer] ${line}`);
  });
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  }).finally(() => clearTimeout(timer));
  const line = out.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  if (code !== 0 || !line) {
    return { error: `the peer's script exited with ${code}${line ? '' : ' without a JSON line'}`, startedAt: startedAt.toISOString() };
  }
  try {
    return { ...(JSON.parse(line) as Record<string, unknown>), startedAt: startedAt.toISOString() };
  } catch {
    return { error: `the peer's script printed no JSON: ${line.slice(0, 200)}`, startedAt: startedAt.toISOString() };
  }
}
