import type { ChildProcess } from 'node:child_process';

export default async function globalTeardown(): Promise<void> {
  const child = (globalThis as { __motoServer?: ChildProcess }).__motoServer;
  if (!child) return;
  if (child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin?.end(); // testing.moto_server stops when its stdin closes
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    if (child.exitCode === null) child.kill();
  }
  child.stdout?.destroy();
  child.stdin?.destroy();
}
