/**
 * Starts moto's server once for the jest run (testing/moto_server.py) and publishes its URL as
 * MOTO_URL. The server stops when its stdin closes: in teardown, or when jest dies.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

export default async function globalSetup(): Promise<void> {
  const python = join(ROOT, '.venv', 'bin', 'python');
  const child = spawn(python, ['-m', 'testing.moto_server'], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error('moto server did not start in 60 s')), 60_000);
    child.on('exit', (code) => reject(new Error(`moto server exited with ${code}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const match = buffer.match(/MOTO_URL=(\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  child.removeAllListeners('exit');
  process.env.MOTO_URL = url;
  (globalThis as { __motoServer?: typeof child }).__motoServer = child;
}
