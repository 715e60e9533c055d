// MailDev (the real SMTP capture server, npm `maildev@2`) for the account-flow scenarios: started
// as its own process on free loopback ports, read over its HTTP API (`GET /email`), stopped at
// the end. Not a test file itself.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** How long to wait for MailDev to answer, or for one mail to arrive (ms). */
const WAIT_MS = 20000;
const POLL_MS = 50;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startMailDev() {
  const [smtp, web] = [await freePort(), await freePort()];
  const bin = path.join(path.dirname(require.resolve('maildev/package.json')), 'bin', 'maildev');
  const proc = spawn(process.execPath, [bin, '--ip', '127.0.0.1', '--smtp', String(smtp), '--web', String(web), '--silent'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const api = `http://127.0.0.1:${web}`;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`maildev exited with ${proc.exitCode}`);
    try {
      const res = await fetch(`${api}/email`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('maildev did not start');
    await sleep(POLL_MS);
  }
  return {
    smtpPort: smtp,
    api,
    /** Every captured mail, as MailDev's JSON. */
    async all() {
      const res = await fetch(`${api}/email`);
      return res.json();
    },
    /** Waits for a mail to `to` that `pred` accepts and that was not seen before. */
    async waitFor(to, pred = () => true, seen = new Set()) {
      const until = Date.now() + WAIT_MS;
      for (;;) {
        const mails = await this.all();
        const hit = mails.find(
          (m) => !seen.has(m.id) && (m.to ?? []).some((t) => t.address.toLowerCase() === to.toLowerCase()) && pred(m),
        );
        if (hit) return hit;
        if (Date.now() > until) throw new Error(`no mail to ${to} within ${WAIT_MS} ms; got ${JSON.stringify(mails.map((m) => [m.to, m.subject]))}`);
        await sleep(POLL_MS);
      }
    },
    /** Ids of every mail to `to` so far (to tell new mail from old). */
    async seenFor(to) {
      const mails = await this.all();
      return new Set(mails.filter((m) => (m.to ?? []).some((t) => t.address.toLowerCase() === to.toLowerCase())).map((m) => m.id));
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
    },
  };
}

/** The token in a link of a PocketBase-style template (`…/confirm-…/<token>`). */
export function tokenIn(mail, action) {
  const m = new RegExp(`${action}/([A-Za-z0-9_\\-]+\\.[A-Za-z0-9_\\-]+\\.[A-Za-z0-9_\\-]+)`).exec(mail.html ?? '');
  if (!m) throw new Error(`no ${action} link in ${mail.html}`);
  return m[1];
}
