/**
 * Starts moto's server (testing/moto_server.py) and waits for the URL it prints. The server
 * stops when its stdin closes. Used by the jest global set-up and by the CLI tests, which need
 * a server of their own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

export interface Moto {
  readonly url: string;
  readonly child: ChildProcess;
}

export async function startMoto(): Promise<Moto> {
  const python = join(ROOT, '.venv', 'bin', 'python');
  const child = spawn(python, ['-m', 'testing.moto_server'], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error('moto server did not start in 60 s')), 60_000);
    child.on('exit', (code) => reject(new Error(`moto server exited with ${code}`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const match = buffer.match(/MOTO_URL=(\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  child.removeAllListeners('exit');
  return { url, child };
}

/** Stops a server startMoto started (it exits when its stdin closes; killed after 10 s). */
export async function stopMoto(moto?: Moto): Promise<void> {
  if (!moto || moto.child.exitCode !== null) return;
  const exited = new Promise((resolve) => moto.child.once('exit', resolve));
  moto.child.stdin?.end();
  const timer = setTimeout(() => moto.child.kill(), 10_000);
  await exited;
  clearTimeout(timer);
}
