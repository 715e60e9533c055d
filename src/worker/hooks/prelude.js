// The JavaScript half of the PocketBase-compatible globals, evaluated once in every runtime
// (loader and executors) after the native functions are installed on `__native`.
//
// It owns what is plain JavaScript in PocketBase's API: the ApiError family and its
// normalisation, the request event `e`, the hook chain, middlewares, `$apis`, `require`,
// DynamicModel, DateTime and the byte helpers. Everything that touches the host (files, hashes,
// HTTP, logs, the database) is a `__native` function defined in Rust.
(function (g) {
  "use strict";
  const N = g.__native;
  const vb = {};
  Object.defineProperty(g, "__vb", { value: vb, enumerable: false });

  // ---------------------------------------------------------------- bytes

  const BYTES = Symbol("bytes");
  // Go's []byte surfaces in goja as an array of numbers: keep that shape, and mark it so
  // toString() can decode it as UTF-8.
  function bytes(arr) {
    const out = Array.from(arr);
    Object.defineProperty(out, BYTES, { value: true });
    return out;
  }
  vb.bytes = bytes;
  vb.isBytes = (v) => Array.isArray(v) && v[BYTES] === true;

  class BodyReader {
    constructor(text) { Object.defineProperty(this, "__text", { value: text }); }
    toString() { return this.__text; }
  }
  vb.BodyReader = BodyReader;

  g.toString = function (v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "string") return v;
    if (v instanceof BodyReader) return v.__text;
    if (vb.isBytes(v)) return N.utf8Decode(v);
    if (typeof v === "object" || Array.isArray(v)) return JSON.stringify(v);
    return String(v);
  };
  g.toBytes = function (v) {
    if (v === null || v === undefined) return bytes([]);
    if (vb.isBytes(v)) return v;
    if (v instanceof BodyReader) return bytes(N.utf8Encode(v.__text));
    if (typeof v === "string") return bytes(N.utf8Encode(v));
    if (Array.isArray(v)) return bytes(v.map((x) => Number(x) & 255));
    return bytes(N.utf8Encode(JSON.stringify(v)));
  };
  g.sleep = function (ms) { N.sleep(Number(ms) || 0); };

  // ---------------------------------------------------------------- errors

  function sentenize(s) {
    s = String(s ?? "").trim();
    if (s === "") return "";
    s = s[0].toUpperCase() + s.slice(1);
    const last = s[s.length - 1];
    return last === "." || last === "?" || last === "!" ? s : s + ".";
  }
  vb.sentenize = sentenize;

  const STATUS_TEXT = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Request Entity Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
  };
  const GENERIC = "Something went wrong while processing your request.";

  class ValidationError {
    constructor(code, message) {
      this.code = String(code ?? "");
      this.message = String(message ?? "");
    }
    error() { return this.message; }
    toString() { return this.message; }
  }

  function isPlainObject(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof ValidationError);
  }
  // PocketBase keeps only maps in `data`; a ValidationError value keeps its code and message,
  // any other value becomes the generic "Invalid value.".
  function safeData(data) {
    if (!isPlainObject(data)) return {};
    const out = {};
    for (const k of Object.keys(data)) {
      const v = data[k];
      if (isPlainObject(v)) out[k] = safeData(v);
      else if (v instanceof ValidationError) out[k] = { code: v.code, message: sentenize(v.message) };
      else out[k] = { code: "validation_invalid_value", message: "Invalid value." };
    }
    return out;
  }

  class ApiError extends Error {
    constructor(status, message, data) {
      status = Number(status) || 0;
      let msg = String(message ?? "");
      if (msg === "") msg = STATUS_TEXT[status] ?? "";
      msg = sentenize(msg);
      super(msg);
      this.status = status;
      this.message = msg;
      this.data = safeData(data);
      this.rawData = data;
    }
    is(err) { return err instanceof ApiError && err.status === this.status; }
    toJSON() { return { data: this.data, message: this.message, status: this.status }; }
    error() { return this.message; }
  }
  ApiError.prototype.name = "ApiError";
  function defaultedError(status, fallback) {
    return class extends ApiError {
      constructor(message, data) {
        super(status, String(message ?? "") === "" ? fallback : message, data);
      }
    };
  }
  const BadRequestError = defaultedError(400, GENERIC);
  const UnauthorizedError = defaultedError(401, "Missing or invalid authentication.");
  const ForbiddenError = defaultedError(403, "You are not allowed to perform this request.");
  const NotFoundError = defaultedError(404, "The requested resource wasn't found.");
  const TooManyRequestsError = defaultedError(429, "Too Many Requests.");
  const InternalServerError = defaultedError(500, GENERIC);
  Object.assign(g, {
    ApiError, BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError,
    TooManyRequestsError, InternalServerError, ValidationError,
  });

  // What goja hands to a handler when `e.next()` fails downstream: `err.message` is the
  // error's message and `err.value` the error itself (so `err.value.status`).
  class GoError extends Error {
    constructor(inner) {
      super(inner && inner.message !== undefined ? String(inner.message) : String(inner));
      this.value = inner;
    }
  }
  GoError.prototype.name = "GoError";
  vb.wrapGo = (err) => (err instanceof GoError ? err : new GoError(err));

  // A thrown value → the answer {status, message, data}, and whether it should be logged
  // (anything that is not an ApiError is a bug in the hook: PocketBase answers a generic 400).
  vb.failure = function (err) {
    let inner = err;
    while (inner instanceof GoError) inner = inner.value;
    if (inner instanceof ApiError) {
      return { status: inner.status || 400, message: inner.message, data: inner.data, log: false };
    }
    if (inner && inner.__notFound === true) {
      return { status: 404, message: "The requested resource wasn't found.", data: {}, log: false };
    }
    let text;
    try {
      text = inner instanceof Error ? String(inner.name) + ": " + String(inner.message) : String(inner);
    } catch (_) {
      text = "<unprintable value>";
    }
    const stack = inner instanceof Error && typeof inner.stack === "string" ? inner.stack : "";
    return { status: 400, message: GENERIC, data: {}, log: true, text, stack };
  };

  // ---------------------------------------------------------------- DynamicModel, DateTime

  class DynamicModel {
    constructor(shape) {
      if (shape && typeof shape === "object") {
        for (const k of Object.keys(shape)) this[k] = shape[k];
      }
    }
  }
  g.DynamicModel = DynamicModel;
  g.arrayOf = function (model) { const out = []; out.__model = model; return out; };
  // PocketBase's unmarshal(data, dst): copies a JSON-able value (or JSON text) into dst. An
  // object with its own `__unmarshal(plain)` (a binding's class) takes the data itself.
  g.unmarshal = function (data, dst) {
    const plain = typeof data === "string" ? JSON.parse(data) : JSON.parse(JSON.stringify(data ?? null));
    if (dst && typeof dst.__unmarshal === "function") {
      dst.__unmarshal(plain);
      return undefined;
    }
    if (!dst || typeof dst !== "object" || !plain || typeof plain !== "object") return undefined;
    // A DynamicModel is a struct of its shape: only its own keys take values.
    const keys = dst instanceof DynamicModel ? Object.keys(dst).filter((k) => k in plain) : Object.keys(plain);
    for (const k of keys) dst[k] = plain[k];
    return undefined;
  };

  function pad(n, w) { return String(n).padStart(w, "0"); }
  class DateTime {
    constructor(v) {
      let ms;
      if (v === undefined || v === null || v === "") ms = v === "" ? NaN : Date.now();
      else if (v instanceof DateTime) ms = v.__ms;
      else if (typeof v === "number") ms = v;
      else ms = Date.parse(String(v).replace(" ", "T"));
      Object.defineProperty(this, "__ms", { value: ms, writable: true });
    }
    isZero() { return !Number.isFinite(this.__ms); }
    unix() { return Math.floor(this.__ms / 1000); }
    time() { return new Date(this.__ms); }
    string() {
      if (this.isZero()) return "";
      const d = new Date(this.__ms);
      return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + " " +
        pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) + "." +
        pad(d.getUTCMilliseconds(), 3) + "Z";
    }
    toString() { return this.string(); }
    toJSON() { return this.string(); }
    add(ms) { return new DateTime(this.__ms + ms); }
    addDate(y, m, d) {
      const t = new Date(this.__ms);
      t.setUTCFullYear(t.getUTCFullYear() + (y | 0), t.getUTCMonth() + (m | 0), t.getUTCDate() + (d | 0));
      return new DateTime(t.getTime());
    }
    before(o) { return this.__ms < new DateTime(o).__ms; }
    after(o) { return this.__ms > new DateTime(o).__ms; }
    equal(o) { return this.__ms === new DateTime(o).__ms; }
    compare(o) { const b = new DateTime(o).__ms; return this.__ms < b ? -1 : this.__ms > b ? 1 : 0; }
  }
  g.DateTime = DateTime;

  // ---------------------------------------------------------------- console, require

  function fmt(args) {
    return args.map((a) => {
      if (typeof a === "string") return a;
      if (a instanceof Error) return String(a.name) + ": " + String(a.message);
      try { const s = JSON.stringify(a); return s === undefined ? String(a) : s; } catch (_) { return String(a); }
    }).join(" ");
  }
  g.console = {
    log: (...a) => N.log("info", fmt(a)),
    info: (...a) => N.log("info", fmt(a)),
    debug: (...a) => N.log("debug", fmt(a)),
    warn: (...a) => N.log("warn", fmt(a)),
    error: (...a) => N.log("error", fmt(a)),
    trace: (...a) => N.log("debug", fmt(a)),
  };

  // CommonJS over the hooks dir, the working directory and node_modules; one cache per runtime.
  const modules = Object.create(null);
  function makeRequire(fromDir) {
    return function require(name) {
      const found = N.resolveModule(String(name), fromDir);
      if (modules[found.path]) return modules[found.path].exports;
      const module = { exports: {}, id: found.path, filename: found.path };
      modules[found.path] = module;
      try {
        if (found.json) {
          module.exports = JSON.parse(found.source);
        } else {
          const fn = N.evalScript("(function (module, exports, require, __filename, __dirname) {" + found.source + "\n})", found.path);
          fn.call(module.exports, module, module.exports, makeRequire(found.dir), found.path, found.dir);
        }
      } catch (err) {
        delete modules[found.path];
        throw err;
      }
      return module.exports;
    };
  }
  g.require = makeRequire("");
  vb.makeRequire = makeRequire;

  // ---------------------------------------------------------------- $app and friends

  function unsupported(what) {
    return function (target, key) {
      if (typeof key === "symbol" || key in target) return target[key];
      if (key === "toJSON" || key === "then" || key === "inspect" || key === "constructor") return undefined;
      throw new TypeError(what + String(key) + " is not supported by vaultbase");
    };
  }
  // A namespace whose unknown members throw a clear TypeError instead of being `undefined`.
  vb.strictNamespace = function (prefix, target) {
    return new Proxy(target, { get: unsupported(prefix) });
  };

  // The members of `$app`; other binding modules add theirs to vb.appMembers.
  vb.appMembers = {
    logger() { return logger; },
    store() { return store; },
    isDev() { return false; },
  };
  // One store per worker process (Rust side), shared by every runtime; values go through JSON.
  const store = {
    get: (k) => { const v = N.storeGet(String(k)); return v === undefined || v === null ? null : JSON.parse(v); },
    set: (k, v) => { N.storeSet(String(k), JSON.stringify(v === undefined ? null : v)); },
    has: (k) => { const v = N.storeGet(String(k)); return v !== undefined && v !== null; },
    remove: (k) => { N.storeSet(String(k)); },
    removeAll: () => { for (const k of N.storeKeys()) N.storeSet(k); },
    getAll: () => Object.fromEntries(N.storeKeys().map((k) => [k, store.get(k)])),
    length: () => N.storeKeys().length,
    setIfLessThanLimit: (k, v, limit) => { if (!store.has(k) && N.storeKeys().length >= limit) return false; store.set(k, v); return true; },
    getOrSet: (k, fn) => { if (!store.has(k)) store.set(k, fn()); return store.get(k); },
  };
  function kv(args) {
    const out = {};
    for (let i = 0; i < args.length; i += 2) out[String(args[i])] = args[i + 1] === undefined ? null : args[i + 1];
    return out;
  }
  function makeLogger(attrs) {
    const emit = (level) => (msg, ...args) => {
      let data;
      try { data = JSON.stringify(Object.assign({}, attrs, kv(args))); } catch (_) { data = "{}"; }
      N.appLog(level, String(msg ?? ""), data);
    };
    return {
      debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error"),
      with: (...args) => makeLogger(Object.assign({}, attrs, kv(args))),
      withGroup: () => makeLogger(attrs),
    };
  }
  const logger = makeLogger({});
  vb.baseApp = vb.strictNamespace("$app.", vb.appMembers);
  // PocketBase points `$app` at `e.app` while a handler runs (the transactional app inside
  // runInTransaction); a stack restores the outer one when a nested handler returns.
  vb.appStack = [vb.baseApp];
  Object.defineProperty(g, "$app", {
    get() { return vb.appStack[vb.appStack.length - 1]; },
    set(v) { vb.appStack[vb.appStack.length - 1] = v; },
    configurable: true,
  });
  vb.withApp = function (app, fn) {
    vb.appStack.push(app || vb.appStack[vb.appStack.length - 1]);
    try { return fn(); } finally { vb.appStack.pop(); }
  };

  // Records: jsdata replaces vb.makeRecord with the real Record class. Until then an auth
  // record is a read-only view over its JSON.
  function publicJSON(json, collection) {
    const out = Object.assign({ collectionId: collection ? collection.id : "", collectionName: collection ? collection.name : "" }, json);
    if (collection && collection.type === "auth" && out.emailVisibility !== true) delete out.email;
    return out;
  }
  vb.makeRecord = function (json, collection) {
    if (json === null || json === undefined) return null;
    const rec = {
      id: json.id,
      get: (k) => (json[k] === undefined ? null : json[k]),
      getString: (k) => (json[k] === undefined || json[k] === null ? "" : String(json[k])),
      email: () => json.email ?? "",
      verified: () => json.verified === true,
      collection: () => collection,
      isSuperuser: () => collection && collection.name === "_superusers",
      publicExport: () => publicJSON(json, collection),
      toJSON: () => publicJSON(json, collection),
    };
    return rec;
  };

  // ---------------------------------------------------------------- $security, $os, $http

  g.$security = vb.strictNamespace("$security.", {
    randomString: (n) => N.randomString(n | 0, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    randomStringWithAlphabet: (n, abc) => N.randomString(n | 0, String(abc)),
    pseudorandomString: (n) => N.randomString(n | 0, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    pseudorandomStringWithAlphabet: (n, abc) => N.randomString(n | 0, String(abc)),
    randomStringByRegex: () => { throw new TypeError("$security.randomStringByRegex is not supported by vaultbase"); },
    md5: (s) => N.hash("md5", toString(s)),
    sha256: (s) => N.hash("sha256", toString(s)),
    sha512: (s) => N.hash("sha512", toString(s)),
    hs256: (s, key) => N.hmac("sha256", toString(s), toString(key)),
    hs512: (s, key) => N.hmac("sha512", toString(s), toString(key)),
    equal: (a, b) => N.constantTimeEqual(toString(a), toString(b)),
    createJWT: (payload, key, seconds) => N.jwtCreate(JSON.stringify(payload ?? {}), toString(key), Number(seconds) || 0),
    parseJWT: (token, key) => JSON.parse(N.jwtParse(toString(token), toString(key))),
    parseUnverifiedJWT: (token) => JSON.parse(N.jwtParseUnverified(toString(token))),
    encrypt: (data, key) => N.encrypt(toString(data), toString(key)),
    decrypt: (data, key) => N.utf8Decode(N.decrypt(toString(data), toString(key))),
  });

  g.$os = vb.strictNamespace("$os.", {
    getenv: (k) => N.getenv(String(k)),
    readFile: (p) => bytes(N.readFile(String(p))),
    writeFile: (p, data, perm) => N.writeFile(String(p), toBytes(data), perm === undefined ? 0o644 : Number(perm)),
    readDir: (p) => N.readDir(String(p)).map((e) => ({ name: () => e.name, isDir: () => e.isDir, type: () => (e.isDir ? 2147483648 : 0) })),
    remove: (p) => N.remove(String(p), false),
    removeAll: (p) => N.remove(String(p), true),
    mkdir: (p, perm) => N.mkdirAll(String(p), false),
    mkdirAll: (p, perm) => N.mkdirAll(String(p), true),
    tempDir: () => N.tempDir(),
    getwd: () => N.getwd(),
    exit: () => { throw new TypeError("$os.exit is not supported by vaultbase"); },
    stat: (p) => { const s = N.stat(String(p)); return { name: () => s.name, size: () => s.size, isDir: () => s.isDir, modTime: () => new DateTime(s.modified) }; },
    cmd: (...args) => {
      const argv = args.map(String);
      return {
        output: () => bytes(N.exec(argv, false)),
        combinedOutput: () => bytes(N.exec(argv, true)),
        run: () => { N.exec(argv, false); },
      };
    },
    exec: (...args) => g.$os.cmd(...args),
  });

  g.$http = vb.strictNamespace("$http.", {
    send: (config) => {
      config = config || {};
      let body = config.body;
      if (body !== undefined && body !== null && typeof body !== "string") body = toString(body);
      const headers = {};
      for (const [k, v] of Object.entries(config.headers || {})) headers[k] = String(v);
      const res = N.httpSend(JSON.stringify({
        url: String(config.url ?? ""),
        method: String(config.method || "GET").toUpperCase(),
        body: body ?? null,
        headers,
        timeout: config.timeout === undefined ? 120 : Number(config.timeout),
      }));
      const parsed = JSON.parse(res.meta);
      const raw = res.body;
      let json = null;
      try { json = JSON.parse(N.utf8Decode(raw)); } catch (_) { json = null; }
      return {
        statusCode: parsed.statusCode,
        headers: parsed.headers,
        cookies: parsed.cookies,
        body: bytes(raw),
        get raw() { return N.utf8Decode(raw); },
        json,
      };
    },
  });

  // ---------------------------------------------------------------- the hook chain

  // Runs a chain's first `step` with `e.next()` running the next one (a throw below it comes
  // out of e.next() as a GoError), then gives `e` back whatever `next` it had: chains nest
  // on one event and on events derived from it with Object.create.
  function drive(e, step) {
    const outer = Object.getOwnPropertyDescriptor(e, "next");
    Object.defineProperty(e, "next", {
      value: function () {
        try { step(); } catch (err) { throw vb.wrapGo(err); }
      },
      writable: true, configurable: true, enumerable: false,
    });
    try {
      step();
    } finally {
      if (outer) Object.defineProperty(e, "next", outer); else delete e.next;
    }
  }

  // Runs `links` (functions of `e`) in order: each continues with `e.next()`, which throws a
  // GoError if anything downstream throws. A link that does not call `e.next()` ends the chain.
  // Async handlers are tolerated: their promise is settled before the chain goes on.
  vb.runChain = function (e, links) {
    let i = 0;
    const step = function () {
      if (i >= links.length) return;
      const link = links[i++];
      // Only a promise needs the host's help (no native call for a plain handler).
      const out = link(e);
      if (out instanceof Promise) N.settle(out);
    };
    drive(e, step);
  };
  // runChain over compiled handlers then `last` (a plain link), each handler run as its
  // hookLink would run it: no link closures, no withApp closure per call.
  vb.runHandlers = function (e, handlers, last) {
    let i = 0;
    const n = handlers.length;
    const step = function () {
      if (i > n) return;
      const k = i++;
      let out;
      if (k === n) {
        out = last(e);
      } else {
        const stack = vb.appStack;
        stack.push((e && e.app) || stack[stack.length - 1]);
        try { out = handlers[k].call(undefined, e); } finally { stack.pop(); }
      }
      if (out instanceof Promise) N.settle(out);
    };
    drive(e, step);
  };
  // A compiled handler as a chain link: `$app` is `e.app` while it runs.
  vb.hookLink = function (fn) {
    return function (e) {
      return vb.withApp(e && e.app, () => fn.call(undefined, e));
    };
  };

  // ---------------------------------------------------------------- middlewares, $apis

  class Middleware {
    constructor(fn, priority, id) {
      this.func = fn;
      this.priority = Number(priority) || 0;
      this.id = id === undefined || id === null ? "" : String(id);
    }
  }
  g.Middleware = Middleware;

  function apisMiddleware(name, args, priority, id) {
    const src = "function (e) { return __vb.apis." + name + "(e, " + JSON.stringify(args) + "); }";
    const mw = new Middleware(null, priority, id);
    mw.__src = src;
    return mw;
  }
  vb.apis = {
    requireAuth(e, cols) {
      if (!e.auth) throw new UnauthorizedError("The request requires valid record authorization token.");
      const c = e.auth.collection();
      if (cols.length > 0 && !cols.includes(c.name) && !cols.includes(c.id)) {
        throw new ForbiddenError("The authorized record is not allowed to perform this action.");
      }
      e.next();
    },
    requireSuperuserAuth(e) {
      if (!e.auth) throw new UnauthorizedError("The request requires valid record authorization token.");
      if (!e.hasSuperuserAuth()) throw new ForbiddenError("The authorized record is not allowed to perform this action.");
      e.next();
    },
    requireGuestOnly(e) {
      if (e.auth) throw new BadRequestError("The request can be accessed only by guests.");
      e.next();
    },
    requireSuperuserOrOwnerAuth(e, args) {
      const param = args[0] || "id";
      if (!e.auth) throw new UnauthorizedError("The request requires superuser or record authorization token.");
      if (e.hasSuperuserAuth()) return e.next();
      const owner = e.request.pathValue(param);
      if (!owner || e.auth.id !== owner) throw new ForbiddenError("You are not allowed to perform this request.");
      e.next();
    },
    bodyLimit(e, args) {
      const limit = Number(args[0]) || 0;
      if (limit > 0 && e.__bodyLength > limit) throw new ApiError(413, "Request entity too large");
      e.next();
    },
    pass(e) { e.next(); },
    static(e, args) {
      const found = N.staticFile(args[0], e.request.pathValue("path"), args[1]);
      if (found === null || found === undefined) throw new ApiError(404, "File not found.");
      e.__response.file = found.path;
      e.__response.headers.push(["content-type", found.type], ["x-content-type-options", "nosniff"]);
      e.__response.status = 200;
      e.__response.written = true;
    },
  };
  g.$apis = vb.strictNamespace("$apis.", {
    requireAuth: (...cols) => apisMiddleware("requireAuth", cols.map(String), 0, "pbRequireAuth"),
    requireSuperuserAuth: () => apisMiddleware("requireSuperuserAuth", [], 0, "pbRequireSuperuserAuth"),
    requireGuestOnly: () => apisMiddleware("requireGuestOnly", [], 0, "pbRequireGuestOnly"),
    requireSuperuserOrOwnerAuth: (param) => apisMiddleware("requireSuperuserOrOwnerAuth", [param ? String(param) : "id"], 0, "pbRequireSuperuserOrOwnerAuth"),
    bodyLimit: (n) => apisMiddleware("bodyLimit", [Number(n) || 0], -990, "pbBodyLimit"),
    gzip: () => apisMiddleware("pass", [], 0, "pbGzip"),
    // A route handler (not a middleware): `routerAdd("GET", "/{path...}", $apis.static(dir, fallback))`.
    // Built with `new Function` so that, like any handler, it has source text to re-compile.
    static: (dir, indexFallback) =>
      new Function("e", "return __vb.apis.static(e, " + JSON.stringify([String(dir ?? ""), indexFallback === true]) + ");"),
    skipSuccessActivityLog: () => apisMiddleware("pass", [], 0, "pbSkipSuccessActivityLog"),
  });

  // ---------------------------------------------------------------- the request event

  function firstValues(pairs) {
    const out = {};
    for (const [k, v] of pairs) if (!(k in out)) out[k] = v;
    return out;
  }
  // PocketBase infers the type of each form value: "true"/"false" → booleans, numbers → numbers.
  function inferValue(raw) {
    if (raw === "") return raw;
    if (raw === "true") return true;
    if (raw === "false") return false;
    if (/^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(raw)) {
      const n = Number(raw);
      if (Number.isFinite(n)) return n;
    }
    return raw;
  }
  function formBody(pairs) {
    const out = {};
    for (const [k, v] of pairs) {
      const val = inferValue(v);
      if (k in out) out[k] = Array.isArray(out[k]) ? out[k].concat([val]) : [out[k], val];
      else out[k] = val;
    }
    return out;
  }

  class Headers {
    constructor(pairs) { Object.defineProperty(this, "__pairs", { value: pairs }); }
    get(k) {
      k = String(k).toLowerCase();
      for (const [n, v] of this.__pairs) if (n === k) return v;
      return "";
    }
    values(k) { k = String(k).toLowerCase(); return this.__pairs.filter(([n]) => n === k).map(([, v]) => v); }
    has(k) { k = String(k).toLowerCase(); return this.__pairs.some(([n]) => n === k); }
    set(k, v) { this.del(k); this.__pairs.push([String(k).toLowerCase(), String(v)]); }
    add(k, v) { this.__pairs.push([String(k).toLowerCase(), String(v)]); }
    del(k) {
      k = String(k).toLowerCase();
      for (let i = this.__pairs.length - 1; i >= 0; i--) if (this.__pairs[i][0] === k) this.__pairs.splice(i, 1);
    }
  }
  class Query {
    constructor(pairs) { Object.defineProperty(this, "__pairs", { value: pairs }); }
    get(k) { for (const [n, v] of this.__pairs) if (n === k) return v; return ""; }
    has(k) { return this.__pairs.some(([n]) => n === k); }
    all(k) { return this.__pairs.filter(([n]) => n === k).map(([, v]) => v); }
    encode() { return this.__pairs.map(([k, v]) => encodeURIComponent(k) + "=" + encodeURIComponent(v)).join("&"); }
  }

  // The request event `e` of a custom route or a request hook, over the request Rust read
  // (`r`). Its methods live on the prototype and `e.request`, `e.response` and `e.auth` are
  // built on first use: most handlers touch two or three members, and building ~45 closures
  // per request was most of a small route's cost. `this[EVENT]` holds the per-request state,
  // shared by events derived with Object.create(e) as the closures of one event were.
  function writeTo(res, status, type, body) {
    if (res.written) return;
    res.written = true;
    res.status = Number(status) || 200;
    if (type !== null && !hasHeader(res.headers, "content-type")) res.headers.push(["content-type", type]);
    res.body = body;
  }
  function hasHeader(pairs, name) {
    for (let i = 0; i < pairs.length; i++) if (pairs[i][0] === name) return true;
    return false;
  }
  // Go marshals an exported `undefined` as null: keep such keys (a JSON.stringify replacer).
  const undefinedAsNull = (k, v) => (v === undefined ? null : v);
  // `e.request`: plain members copied, the rest built on first use (most handlers read one
  // or two); each built member then stays as an own property, so it can be replaced too.
  const REQ = Symbol("request");
  function own(obj, name, value) {
    Object.defineProperty(obj, name, { value, writable: true, enumerable: true, configurable: true });
    return value;
  }
  class RequestView {
    constructor(r) {
      this[REQ] = r;
      this.method = r.method;
      this.remoteAddr = r.remoteIP;
      this.contentLength = r.bodyLength;
    }
    get header() { return own(this, "header", new Headers(this[REQ].headers)); }
    set header(v) { own(this, "header", v); }
    get host() { return this.header.get("host"); }
    set host(v) { own(this, "host", v); }
    get requestURI() { const r = this[REQ]; return r.path + (r.rawQuery ? "?" + r.rawQuery : ""); }
    set requestURI(v) { own(this, "requestURI", v); }
    get url() {
      const r = this[REQ];
      return own(this, "url", {
        path: r.path,
        rawQuery: r.rawQuery,
        query: () => new Query(r.query),
        string: () => r.path + (r.rawQuery ? "?" + r.rawQuery : ""),
      });
    }
    set url(v) { own(this, "url", v); }
    get body() { return own(this, "body", new BodyReader(this[REQ].body)); }
    set body(v) { own(this, "body", v); }
    pathValue(name) { const v = this[REQ].pathValues[name]; return v === undefined ? "" : v; }
    setPathValue(name, v) { this[REQ].pathValues[name] = String(v); }
  }
  function buildRequest(r) {
    return new RequestView(r);
  }
  function buildResponse(res) {
    return {
      header: () => ({
        set: (k, v) => { const n = String(k).toLowerCase(); res.headers = res.headers.filter(([h]) => h !== n); res.headers.push([n, String(v)]); },
        add: (k, v) => { res.headers.push([String(k).toLowerCase(), String(v)]); },
        get: (k) => { const n = String(k).toLowerCase(); const f = res.headers.find(([h]) => h === n); return f ? f[1] : ""; },
        del: (k) => { const n = String(k).toLowerCase(); res.headers = res.headers.filter(([h]) => h !== n); },
      }),
      writeHeader: (status) => writeTo(res, status, null, ""),
      write: (s) => { if (!res.written) writeTo(res, 200, null, ""); res.body += toString(s); },
    };
  }
  const NOT_BUILT = Symbol("not built");
  // The per-request state's key: a symbol stays out of handlers' Object.keys and JSON like a
  // non-enumerable property, and a plain store is cheaper than defining one.
  const EVENT = Symbol("event");
  class RequestEvent {
    constructor(r) {
      this[EVENT] = { r, res: { status: 0, headers: [], body: "", bytes: null, written: false }, store: null, infoBody: undefined, request: NOT_BUILT, response: NOT_BUILT, auth: NOT_BUILT };
      this.app = vb.appStack[0];
    }
    get request() { const s = this[EVENT]; if (s.request === NOT_BUILT) s.request = buildRequest(s.r); return s.request; }
    set request(v) { this[EVENT].request = v; }
    get response() { const s = this[EVENT]; if (s.response === NOT_BUILT) s.response = buildResponse(s.res); return s.response; }
    set response(v) { this[EVENT].response = v; }
    get auth() { const s = this[EVENT]; if (s.auth === NOT_BUILT) s.auth = s.r.auth ? vb.makeRecord(s.r.auth, s.r.authCollection) : null; return s.auth; }
    set auth(v) { this[EVENT].auth = v; }
    get __response() { return this[EVENT].res; }
    get __bodyLength() { return this[EVENT].r.bodyLength; }
    json(status, data) {
      // Go marshals an exported `undefined` as null: keep such keys.
      const body = JSON.stringify(data === undefined ? null : data, undefinedAsNull);
      writeTo(this[EVENT].res, status, "application/json", body === undefined ? "null" : body);
    }
    string(status, s) { writeTo(this[EVENT].res, status, "text/plain; charset=utf-8", toString(s)); }
    html(status, s) { writeTo(this[EVENT].res, status, "text/html; charset=utf-8", toString(s)); }
    xml(status, s) { writeTo(this[EVENT].res, status, "application/xml; charset=utf-8", toString(s)); }
    noContent(status) { writeTo(this[EVENT].res, status, null, ""); }
    redirect(status, url) {
      const res = this[EVENT].res;
      if (res.written) return;
      res.headers.push(["location", String(url)]);
      writeTo(res, status, null, "");
    }
    blob(status, contentType, b) {
      const res = this[EVENT].res;
      if (res.written) return;
      writeTo(res, status, String(contentType), "");
      res.bytes = Array.from(toBytes(b));
    }
    stream() { throw new TypeError("e.stream is not supported by vaultbase"); }
    fileFS() { throw new TypeError("e.fileFS is not supported by vaultbase"); }
    hasSuperuserAuth() { return this[EVENT].r.superuser === true; }
    isTLS() { return false; }
    realIP() { return this[EVENT].r.realIP; }
    remoteIP() { return this[EVENT].r.remoteIP; }
    set(k, v) { const s = this[EVENT]; if (s.store === null) s.store = new Map(); s.store.set(k, v); }
    get(k) { const m = this[EVENT].store; return m !== null && m.has(k) ? m.get(k) : null; }
    setAll(m) { for (const k of Object.keys(m || {})) this.set(k, m[k]); }
    getAll() { return this[EVENT].store === null ? {} : Object.fromEntries(this[EVENT].store); }
    requestInfo() {
      const s = this[EVENT];
      const r = s.r;
      if (s.infoBody === undefined) s.infoBody = vb.parseBody(r);
      const headers = {};
      for (const [k, v] of r.headers) {
        const n = k.toLowerCase().replace(/-/g, "_");
        if (!(n in headers)) headers[n] = v;
      }
      return {
        query: firstValues(r.query),
        headers,
        body: s.infoBody,
        auth: this.auth,
        method: r.method,
        context: r.context || "default",
        hasSuperuserAuth: () => r.superuser === true,
      };
    }
    // As Go's JSON binding: only the shaped keys, and a value of the wrong type is a 400.
    bindBody(target) {
      const s = this[EVENT];
      if (s.infoBody === undefined) s.infoBody = vb.parseBody(s.r);
      const src = s.infoBody || {};
      for (const k of Object.keys(target)) {
        if (!(k in src)) continue;
        const cur = target[k];
        const v = src[k];
        const want = cur === null || cur === undefined ? null : Array.isArray(cur) ? "array" : typeof cur;
        const got = v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
        if (want !== null && got !== "null" && want !== got) throw new BadRequestError();
        target[k] = v;
      }
      return target;
    }
    error(status, message, data) { return new ApiError(status, message, data); }
    badRequestError(message, data) { return new BadRequestError(message, data); }
    notFoundError(message, data) { return new NotFoundError(message, data); }
    forbiddenError(message, data) { return new ForbiddenError(message, data); }
    unauthorizedError(message, data) { return new UnauthorizedError(message, data); }
    tooManyRequestsError(message, data) { return new TooManyRequestsError(message, data); }
    internalServerError(message, data) { return new InternalServerError(message, data); }
    next() {}
  }
  vb.requestEvent = (r) => new RequestEvent(r);

  vb.parseBody = function (r) {
    if (r.form) return formBody(r.form);
    const type = (r.contentType || "").toLowerCase();
    if (r.body === "") return {};
    if (type.includes("json") || type === "") {
      try { const v = JSON.parse(r.body); return v === null || typeof v !== "object" ? {} : v; } catch (_) { return {}; }
    }
    return {};
  };

  // The response a route wrote, for Rust: an unwritten response is an empty 200.
  vb.responseOf = function (e) {
    const res = e.__response;
    return JSON.stringify({
      status: res.written ? res.status : 200,
      headers: res.headers,
      body: res.body,
      bytes: res.bytes,
      file: res.file ?? null,
    });
  };

  // The response as Rust reads it: [written, status, headers, body, bytes, file] (indexes
  // cost no property-name lookups on the Rust side).
  vb.responseTuple = function (res) {
    return [res.written === true, res.status, res.headers, res.body, res.bytes, res.file ?? null];
  };

  // The request `r` an event is built from, made here from positional values: an object
  // literal's keys are interned once with this code, where Rust setting them one by one
  // looked each name up again per dispatch.
  vb.requestOf = function (method, path, rawQuery, query, headers, contentType, body, bodyLength, form, pathValues, auth, authCollection, superuser, realIP, remoteIP) {
    return { method, path, rawQuery, query, headers, contentType, body, bodyLength, form, pathValues, auth, authCollection, superuser, realIP, remoteIP };
  };

  // A route: global middlewares and the route's own, sorted by priority (stable: globals
  // first), then the handler as the last link.
  vb.runRoute = function (r, middlewares, handler) {
    const e = vb.requestEvent(r);
    try {
      return route(e, middlewares, handler);
    } catch (err) {
      vb.keepFailedHeaders(e);
      throw err;
    }
  };
  // Headers a handler set before it threw stay on the error answer, as on PocketBase's (they
  // were set on the response writer its error handler then writes to): Rust reads them with
  // `vb.takeFailedHeaders()` when a dispatch fails.
  let failedHeaders = null;
  vb.keepFailedHeaders = (e) => { failedHeaders = e.__response.headers; };
  vb.takeFailedHeaders = () => { const h = failedHeaders || []; failedHeaders = null; return h; };
  function route(e, middlewares, handler) {
    if (middlewares.length === 0) {
      // The handler is the whole chain: its e.next() has nothing left to run (the prototype's
      // no-op), so the chain machinery is skipped.
      const stack = vb.appStack;
      stack.push(e.app || stack[stack.length - 1]);
      let out;
      try { out = handler.call(undefined, e); } finally { stack.pop(); }
      if (out instanceof Promise) N.settle(out);
      return vb.responseTuple(e.__response);
    }
    const sorted = middlewares.map((m, i) => ({ m, i })).sort((a, b) => a.m.priority - b.m.priority || a.i - b.i);
    const links = sorted.map(({ m }) => vb.hookLink(m.fn));
    links.push(vb.hookLink(handler));
    vb.runChain(e, links);
    // Read by Rust (no JSON round trip); `written` decides the status there.
    return vb.responseTuple(e.__response);
  }
})(globalThis);
