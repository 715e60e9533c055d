// MailDev (npm `maildev@2`, the SMTP capture server) for the mail journey: its own process on
// free loopback ports, read over its HTTP API (`GET /email`), stopped at the end. The same
// approach as tests/sdk/mailer.mjs, for the browser suite's own node_modules. Not a journey.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** How long to wait for MailDev to answer, or for one mail to arrive (ms). */
const WAIT_MS = 20000;
const POLL_MS = 100;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function startMailDev() {
  const [smtp, web] = [await freePort(), await freePort()];
  const bin = path.join(path.dirname(require.resolve('maildev/package.json')), 'bin', 'maildev');
  const proc = spawn(process.execPath, [bin, '--ip', '127.0.0.1', '--smtp', String(smtp), '--web', String(web), '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const api = `http://127.0.0.1:${web}`;
  const until = Date.now() + WAIT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`maildev exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`${api}/email`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error('maildev did not start');
    await sleep(POLL_MS);
  }
  return {
    smtpPort: smtp,
    async all() {
      return (await fetch(`${api}/email`)).json();
    },
    /** Waits for a mail to `to` (case-insensitive) and returns it. */
    async waitFor(to) {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        const hit = (await this.all()).find((m) => (m.to ?? []).some((t) => t.address.toLowerCase() === to.toLowerCase()));
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`no mail to ${to} within ${WAIT_MS} ms`);
        await sleep(POLL_MS);
      }
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
    },
  };
}
