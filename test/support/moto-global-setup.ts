/**
 * Starts moto's server once for the jest run (testing/moto_server.py) and publishes its URL as
 * MOTO_URL. The server stops when its stdin closes: in teardown, or when jest dies.
 */
import { startMoto } from './moto-server';

export default async function globalSetup(): Promise<void> {
  const { url, child } = await startMoto();
  process.env.MOTO_URL = url;
  (globalThis as { __motoServer?: typeof child }).__motoServer = child;
}
