// `$jobs.enqueue(name, payload, {delay, runAt, maxAttempts, backoff, key})` over the natives of
// jobs_js.rs, and the record hooks' job buffer: while the hooks of a save made outside a
// transaction run, enqueues are planned (with their ids) and handed to that save's write right
// before it is made, so they commit or roll back with it. Evaluated after app.js.
(function (g) {
  "use strict";
  const N = g.__native;
  const vb = g.__vb;

  // One entry per save whose hooks are running: an array of planned jobs (JSON texts), or
  // null for a save in a transaction (its enqueues go to the transaction directly).
  const buffers = [];

  function json(v) {
    return JSON.stringify(v === undefined ? null : v);
  }

  g.$jobs = vb.strictNamespace("$jobs.", {
    enqueue(name, payload, options) {
      if (options !== undefined && options !== null && (typeof options !== "object" || Array.isArray(options))) {
        throw new TypeError("$jobs.enqueue: options must be an object");
      }
      const n = String(name ?? "");
      const tx = vb.txOf(g.$app);
      const buffer = buffers.length ? buffers[buffers.length - 1] : null;
      if (!tx && buffer) {
        const planned = N.jobsPrepare(n, json(payload), json(options || {}));
        buffer.push(planned);
        return JSON.parse(planned).id;
      }
      return N.jobsEnqueue(n, json(payload), json(options || {}), tx || 0);
    },
  });

  // Runs the hooks of a save made with `app` (fn), collecting their enqueues.
  vb.jobsAround = function (app, fn) {
    buffers.push(vb.txOf(app) ? null : []);
    try { return fn(); } finally { buffers.pop(); }
  };
  // Makes the save's write (fn) with the jobs its hooks planned; they are dropped if it fails.
  vb.jobsWrite = function (fn) {
    const buffer = buffers.length ? buffers[buffers.length - 1] : null;
    if (!buffer || !buffer.length) return fn();
    N.jobsStage("[" + buffer.join(",") + "]");
    try { return fn(); } finally { buffer.length = 0; N.jobsStage(""); }
  };
})(globalThis);
