// Registration functions, defined only in the loader runtime (as in PocketBase, routerAdd and
// on* do not exist inside handlers). Each registration records the handler's source text:
// handlers are re-compiled in the executor runtimes and cannot see the file's top-level scope.
(function (g) {
  "use strict";
  const vb = g.__vb;
  const reg = { hooks: [], routes: [], uses: [], crons: [], jobs: [] };
  vb.registrations = reg;
  vb.currentFile = "";

  function source(fn, what) {
    if (typeof fn !== "function") throw new TypeError(what + " must be a function");
    const src = Function.prototype.toString.call(fn);
    if (/\{\s*\[native code\]\s*\}\s*$/.test(src)) {
      throw new TypeError(what + " must be a function written in the hook file (a native or bound function has no source to run)");
    }
    return src;
  }
  function middleware(m, what) {
    if (m instanceof g.Middleware) {
      if (m.__src) return { src: m.__src, priority: m.priority, id: m.id, builtin: true };
      return { src: source(m.func, what), priority: m.priority, id: m.id, builtin: false };
    }
    return { src: source(m, what), priority: 0, id: "", builtin: false };
  }

  g.routerAdd = function (method, path, handler, ...middlewares) {
    reg.routes.push({
      method: String(method ?? ""),
      path: String(path ?? ""),
      src: source(handler, "routerAdd's handler"),
      middlewares: middlewares.map((m) => middleware(m, "a routerAdd middleware")),
      file: vb.currentFile,
    });
  };
  g.routerUse = function (...middlewares) {
    for (const m of middlewares) {
      const spec = middleware(m, "a routerUse middleware");
      spec.file = vb.currentFile;
      reg.uses.push(spec);
    }
  };
  g.cronAdd = function (id, expr, handler) {
    reg.crons.push({ op: "add", id: String(id ?? ""), expr: String(expr ?? ""), src: source(handler, "cronAdd's handler"), file: vb.currentFile });
  };
  g.cronRemove = function (id) {
    reg.crons.push({ op: "remove", id: String(id ?? ""), file: vb.currentFile });
  };
  g.jobsAdd = function (name, handler, options) {
    const o = options || {};
    reg.jobs.push({
      name: String(name ?? ""), src: source(handler, "jobsAdd's handler"),
      concurrency: o.concurrency === undefined ? null : Number(o.concurrency),
      timeout: o.timeout === undefined ? null : Number(o.timeout), file: vb.currentFile,
    });
  };
  // Every on<Name>(handler, ...tags) is recorded by name; which names fire is decided by the
  // code that triggers them (an unknown name is recorded and simply never fires).
  for (const name of vb.hookNames) {
    g[name] = function (handler, ...tags) {
      reg.hooks.push({ name, src: source(handler, name + "'s handler"), tags: tags.map(String), file: vb.currentFile });
    };
  }
  // Executors get cronAdd/cronRemove from the runtime bindings instead.
})(globalThis);
