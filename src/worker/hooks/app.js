// `$app`'s data members (lookups, save/delete with the model hooks, runInTransaction, raw
// SQL, settings, expand) and `$dbx`, over `__native.data(op, argsJSON)`. Evaluated once per
// runtime after record.js. It owns the order of the model hooks around a save — onRecordCreate
// (or Update/Delete) → onRecordValidate → …Execute → the write → after-success hooks (deferred
// to the COMMIT inside a transaction) or the …Error hooks — and the transaction-scoped app
// (`txApp`), which carries its transaction's id to every native call.
(function (g) {
  "use strict";
  const N = g.__native;
  const vb = g.__vb;

  // ---------------------------------------------------------------- native calls

  // The transaction id of a txApp (`$app` itself is a strict Proxy: ask for own properties only).
  function txOf(app) {
    return app && Object.prototype.hasOwnProperty.call(app, "__tx") ? app.__tx : 0;
  }
  vb.txOf = txOf;

  function call(app, op, args) {
    const a = Object.assign({}, args);
    const tx = txOf(app);
    if (tx) a.tx = tx;
    let out;
    try {
      out = N.data(op, JSON.stringify(a));
    } catch (err) {
      throw goError(err);
    }
    return out === undefined || out === null || out === "" ? null : JSON.parse(out);
  }

  // Field errors ({field: {code, message}}, nested for sub-objects) as ValidationErrors, which
  // ApiError keeps as they are (any other value would become "Invalid value.").
  vb.fieldErrors = function (data) {
    const out = {};
    for (const k of Object.keys(data || {})) {
      const v = data[k];
      if (v && typeof v === "object" && typeof v.code === "string") out[k] = new g.ValidationError(v.code, v.message);
      else if (v && typeof v === "object") out[k] = vb.fieldErrors(v);
    }
    return out;
  };
  // An ApiError with the field errors exactly as the write path reported them (with params).
  vb.apiError = (status, message, data) => {
    const err = new g.ApiError(status, message, vb.fieldErrors(data));
    err.data = data;
    return err;
  };

  const OZZO_CODES = new Set(["validation_required", "validation_is_email", "validation_nil_or_not_empty_required",
    "validation_length_out_of_range", "validation_length_too_long", "validation_length_too_short", "validation_in_invalid",
    "validation_not_in_invalid", "validation_match_invalid", "validation_is_url", "validation_empty"]);

  // What goja throws for a failed Go call: a missing row is `sql: no rows in result set`
  // (answered 404 when not caught), failed validation is ozzo's "field: message; …" text
  // (answered 400 with the field errors).
  function goError(err) {
    if (!(err instanceof g.ApiError)) return err;
    if (err.status === 404) return vb.wrapGo({ message: "sql: no rows in result set", __notFound: true });
    const data = err.data || {};
    const keys = Object.keys(data).sort();
    if (err.status !== 400 || !keys.length) return err;
    // ozzo's own rules (required, email…) have lower-case messages; field rules keep theirs.
    const text = keys.map((k) => {
      const d = data[k] || {};
      let m = String(d.message || "");
      if (OZZO_CODES.has(d.code)) m = m.replace(/\.$/, "").replace(/^./, (c) => c.toLowerCase());
      return k + ": " + m;
    }).join("; ") + ".";
    const inner = vb.apiError(400, "Something went wrong while processing your request.", data);
    const go = vb.wrapGo(inner);
    go.message = text;
    return go;
  }
  vb.dataCall = call;

  function colOf(x) {
    if (x instanceof g.Collection) return x.id || x.name;
    return String(x ?? "");
  }
  function recordsOf(out) {
    if (!out) return [];
    const c = vb.makeCollection(out.c);
    return out.list.map((d) => vb.toRecord(d, c));
  }
  function recordOf(out) {
    return out ? vb.toRecord(out.d, vb.makeCollection(out.c)) : null;
  }
  vb.collectionById = function (id) {
    try { return vb.makeCollection(call(null, "collection", { name: id })); } catch (_) { return null; }
  };

  // ---------------------------------------------------------------- hooks

  // The compiled handlers of `name` for `tags`. A runtime serves one hook set and compiles
  // each handler once, so the answer for a name and tags never changes: it is asked of the
  // host once (a native call per fire was a good part of a hooked request).
  const handlerCache = new Map();
  function handlersOf(name, tags) {
    if (!vb.registeredHooks.has(name)) return NONE;
    const key = tags.length === 2 ? name + "\u0000" + tags[0] + "\u0000" + tags[1] : name + "\u0000" + tags.join("\u0000");
    let list = handlerCache.get(key);
    if (list === undefined) {
      // Collections renamed or remade leave keys behind.
      if (handlerCache.size > 4096) handlerCache.clear();
      list = N.hookHandlers(name, tags);
      handlerCache.set(key, list);
    }
    return list;
  }
  const NONE = [];
  vb.handlersOf = handlersOf;

  // Runs the handlers of `name` for `tags`, then `last` as the default action.
  // `vb.registeredHooks` (the names this set has handlers for) spares the lookup for the many
  // events a save fires that nobody listens to.
  function fire(name, tags, e, last) {
    const handlers = handlersOf(name, tags);
    if (!handlers.length) { last(e); return; }
    vb.runHandlers(e, handlers, last);
  }
  vb.fire = fire;
  vb.hasHooks = (name, tags) => handlersOf(name, tags).length > 0;

  function tagsOf(record) {
    const c = record.collection();
    return c ? [c.id, c.name] : [];
  }
  function copyData(d) { return JSON.parse(JSON.stringify(d)); }

  // Runs `fn` after the app's transaction commits (now, outside one).
  function afterCommit(app, ok, fail) {
    if (txOf(app)) app.__after.push({ ok, fail });
    else ok();
  }

  // The model hooks a save or delete can fire, by action.
  const MODEL_HOOKS = {
    Create: ["onRecordCreate", "onRecordValidate", "onRecordCreateExecute", "onRecordAfterCreateSuccess", "onRecordAfterCreateError"],
    Update: ["onRecordUpdate", "onRecordValidate", "onRecordUpdateExecute", "onRecordAfterUpdateSuccess", "onRecordAfterUpdateError"],
    Delete: ["onRecordDelete", "onRecordDeleteExecute", "onRecordAfterDeleteSuccess", "onRecordAfterDeleteError"],
  };
  // Whether no model hook of `act` fires for `tags`: the save is then its write alone. Nothing
  // runs around it, so no job can be planned for it (the write needs no job buffer) and there
  // is nothing to defer to a commit.
  function quiet(act, tags) {
    const names = MODEL_HOOKS[act];
    for (let i = 0; i < names.length; i++) if (handlersOf(names[i], tags).length) return false;
    return true;
  }

  // The model save of PocketBase's `app.Save(record)`: the model hooks around `write`, a
  // function of the record that performs the write and answers the stored fields.
  vb.saveRecord = function (app, record, validate, write) {
    const act = record.isNew() ? "Create" : "Update";
    const tags = tagsOf(record);
    if (quiet(act, tags)) {
      stored(record, write(record));
      return;
    }
    const e = { app, record, type: act.toLowerCase() };
    try {
      vb.jobsAround(app, () => fire("onRecord" + act, tags, e, (e) => {
        if (validate) fire("onRecordValidate", tags, { app: e.app, record: e.record }, () => {});
        fire("onRecord" + act + "Execute", tags, { app: e.app, record: e.record }, (x) => {
          stored(x.record, vb.jobsWrite(() => write(x.record)));
        });
      }));
    } catch (err) {
      afterCommit(app, () => {}, () => {});
      fire("onRecordAfter" + act + "Error", tags, { app, record, error: err }, () => {});
      throw err;
    }
    afterCommit(app,
      () => fire("onRecordAfter" + act + "Success", tags, { app: vb.baseApp, record }, () => {}),
      (err) => fire("onRecordAfter" + act + "Error", tags, { app: vb.baseApp, record, error: err }, () => {}));
  };

  // A record as its write stored it.
  function stored(record, fields) {
    record.__fill(fields);
    const s = record.__s;
    s.isNew = false;
    s.plain = null;
  }

  vb.deleteRecord = function (app, record, write) {
    const tags = tagsOf(record);
    if (quiet("Delete", tags)) {
      write(record);
      return;
    }
    const e = { app, record, type: "delete" };
    try {
      vb.jobsAround(app, () => fire("onRecordDelete", tags, e, (e) => {
        fire("onRecordDeleteExecute", tags, { app: e.app, record: e.record }, (x) => vb.jobsWrite(() => write(x.record)));
      }));
    } catch (err) {
      fire("onRecordAfterDeleteError", tags, { app, record, error: err }, () => {});
      throw err;
    }
    afterCommit(app,
      () => fire("onRecordAfterDeleteSuccess", tags, { app: vb.baseApp, record }, () => {}),
      (err) => fire("onRecordAfterDeleteError", tags, { app: vb.baseApp, record, error: err }, () => {}));
  };

  function nativeSave(app, record, validate) {
    const c = record.collection();
    if (!c) throw new Error("the record has no collection");
    const out = call(app, "save", { col: c.id, fields: record.__d, original: record.__o, isNew: record.isNew(), validate: validate !== false });
    return out.d;
  }

  // ---------------------------------------------------------------- $dbx

  let paramSeq = 0;
  class Expression {
    constructor(sql, params) { this.sql = String(sql); this.params = params || {}; }
    build() { return this.sql; }
  }
  function p(v) { const n = "vbp" + (paramSeq++ % 100000); return [n, v]; }
  function ident(name) {
    return String(name).split(".").map((s) => "`" + s.replace(/`/g, "``") + "`").join(".");
  }
  function merge(exps, op) {
    const parts = [];
    const params = {};
    for (const x of exps) {
      if (!x) continue;
      const e = x instanceof Expression ? x : new Expression(String(x));
      if (!e.sql.trim()) continue;
      parts.push("(" + e.sql + ")");
      Object.assign(params, e.params);
    }
    return new Expression(parts.join(" " + op + " "), params);
  }
  function inExp(col, values, not) {
    if (!values.length) return new Expression(not ? "1=1" : "0=1");
    const params = {};
    const names = values.map((v) => { const [n, val] = p(v); params[n] = val; return "{:" + n + "}"; });
    return new Expression(ident(col) + (not ? " NOT IN (" : " IN (") + names.join(", ") + ")", params);
  }
  function likeExp(col, values, not, or, left, right) {
    const params = {};
    const parts = values.map((v) => {
      const esc = String(v).replace(/\\/g, "\\\\").replace(/%/g, "\\%").replace(/_/g, "\\_");
      const [n] = p(null);
      params[n] = (left ? "%" : "") + esc + (right ? "%" : "");
      return ident(col) + (not ? " NOT LIKE " : " LIKE ") + "{:" + n + "} ESCAPE '\\'";
    });
    return new Expression(parts.join(or ? " OR " : " AND "), params);
  }
  function likeBuilder(col, values, not, or) {
    const e = likeExp(col, values, not, or, true, true);
    e.match = (left, right) => { const m = likeExp(col, values, not, or, left, right); Object.assign(e, { sql: m.sql, params: m.params }); return e; };
    return e;
  }
  g.$dbx = vb.strictNamespace("$dbx.", {
    exp: (sql, params) => new Expression(sql, params),
    hashExp: (m) => {
      const parts = [];
      const params = {};
      for (const k of Object.keys(m || {})) {
        const v = m[k];
        if (v === null || v === undefined) { parts.push(ident(k) + " IS NULL"); continue; }
        if (Array.isArray(v)) { const x = inExp(k, v, false); parts.push(x.sql); Object.assign(params, x.params); continue; }
        if (v instanceof Expression) { parts.push(v.sql); Object.assign(params, v.params); continue; }
        const [n, val] = p(typeof v === "boolean" ? (v ? 1 : 0) : v);
        params[n] = val;
        parts.push(ident(k) + "={:" + n + "}");
      }
      return new Expression(parts.join(" AND "), params);
    },
    and: (...xs) => merge(xs, "AND"),
    or: (...xs) => merge(xs, "OR"),
    not: (x) => new Expression("NOT (" + x.sql + ")", x.params),
    in: (col, ...values) => inExp(col, values.flat(), false),
    notIn: (col, ...values) => inExp(col, values.flat(), true),
    like: (col, ...values) => likeBuilder(col, values, false, false),
    notLike: (col, ...values) => likeBuilder(col, values, true, false),
    orLike: (col, ...values) => likeBuilder(col, values, false, true),
    orNotLike: (col, ...values) => likeBuilder(col, values, true, true),
    exists: (x) => new Expression("EXISTS (" + x.sql + ")", x.params),
    notExists: (x) => new Expression("NOT EXISTS (" + x.sql + ")", x.params),
    between: (col, a, b) => { const [n1] = p(); const [n2] = p(); return new Expression(ident(col) + " BETWEEN {:" + n1 + "} AND {:" + n2 + "}", { [n1]: a, [n2]: b }); },
    notBetween: (col, a, b) => { const [n1] = p(); const [n2] = p(); return new Expression(ident(col) + " NOT BETWEEN {:" + n1 + "} AND {:" + n2 + "}", { [n1]: a, [n2]: b }); },
  });
  vb.Expression = Expression;
  function rawOf(exps) {
    const e = merge(exps.filter((x) => x), "AND");
    return { raw: e.sql, rawParams: e.params };
  }

  // ---------------------------------------------------------------- raw SQL

  // Fills `model` (a DynamicModel, a Record or a plain object) from a row, coercing each value
  // to the type of the model's own property as PocketBase's struct scan does.
  function fill(model, row) {
    if (model instanceof g.Record) { model.__fill(row); model.__o = copyData(model.__d); model.__new = false; return model; }
    for (const k of Object.keys(row)) {
      const v = row[k];
      if (!(k in model)) { model[k] = v; continue; }
      const shape = model[k];
      if (typeof shape === "number") model[k] = v === null ? 0 : Number(v);
      else if (typeof shape === "boolean") model[k] = v === true || v === 1 || v === "1" || v === "true";
      else if (typeof shape === "string") model[k] = v === null ? "" : String(v);
      else if (Array.isArray(shape) || (shape !== null && typeof shape === "object")) {
        try { model[k] = typeof v === "string" ? JSON.parse(v) : v; } catch (_) { model[k] = v; }
      } else model[k] = v;
    }
    return model;
  }
  function newLike(template) {
    if (template instanceof g.Record) return new g.Record(template.collection());
    if (template instanceof g.DynamicModel) return new g.DynamicModel(JSON.parse(JSON.stringify(template)));
    if (template && typeof template === "object") return JSON.parse(JSON.stringify(template));
    return {};
  }
  class Query {
    constructor(app, sql) { this.__app = app; this.__sql = String(sql); this.__params = {}; }
    bind(params) { Object.assign(this.__params, params || {}); return this; }
    execute() {
      const n = call(this.__app, "execute", { sql: this.__sql, params: this.__params });
      return { rowsAffected: () => n, lastInsertId: () => 0 };
    }
    all(target) {
      const rows = call(this.__app, "query", { sql: this.__sql, params: this.__params });
      if (!Array.isArray(target)) return rows;
      const template = target.__model;
      target.length = 0;
      for (const r of rows) target.push(template === undefined ? r : fill(newLike(template), r));
      return target;
    }
    one(target) {
      const rows = call(this.__app, "query", { sql: this.__sql, params: this.__params });
      if (!rows.length) throw new Error("sql: no rows in result set");
      return target === undefined ? rows[0] : fill(target, rows[0]);
    }
    row(...vals) { return this.one(); }
    column(target) { const rows = this.all(); const out = rows.map((r) => r[Object.keys(r)[0]]); if (Array.isArray(target)) { target.length = 0; target.push(...out); return target; } return out; }
  }
  function db(app) {
    return {
      newQuery: (sql) => new Query(app, sql),
    };
  }

  // A record select for `recordQuery(col)`: where/andWhere/orderBy/limit/offset, then one/all.
  class RecordQuery {
    constructor(app, col) { this.__app = app; this.__col = col; this.__where = []; this.__order = ""; this.__limit = 0; this.__offset = 0; }
    where(x) { this.__where = [x]; return this; }
    andWhere(x) { this.__where.push(x); return this; }
    orderBy(...cols) { this.__order = cols.join(","); return this; }
    andOrderBy(...cols) { this.__order = [this.__order, ...cols].filter((x) => x).join(","); return this; }
    limit(n) { this.__limit = Number(n) || 0; return this; }
    offset(n) { this.__offset = Number(n) || 0; return this; }
    __run(limit) {
      const sort = this.__order.split(",").map((s) => s.trim()).filter((s) => s).map((s) => {
        const [f, dir] = s.split(/\s+/);
        return (String(dir || "").toUpperCase() === "DESC" ? "-" : "") + f.replace(/[`"[\]]/g, "");
      }).join(",");
      return recordsOf(call(this.__app, "findByFilter", Object.assign({ col: colOf(this.__col), filter: "", sort, limit, offset: this.__offset }, rawOf(this.__where))));
    }
    all(target) {
      const list = this.__run(this.__limit);
      if (Array.isArray(target)) { target.length = 0; target.push(...list); return target; }
      return list;
    }
    one(target) {
      const list = this.__run(1);
      if (!list.length) throw new Error("sql: no rows in result set");
      if (target instanceof g.Record) { target.__c = list[0].collection(); target.__fill(list[0].__d); target.__o = copyData(target.__d); target.__new = false; return target; }
      return list[0];
    }
  }

  // ---------------------------------------------------------------- the members

  // Each member reads the app it was called on (`this`), so `txApp.findRecordById` runs in
  // the transaction.
  const members = {
    findCollectionByNameOrId(x) { return new g.Collection(call(this, "collection", { name: colOf(x) })); },
    findCachedCollectionByNameOrId(x) { return vb.makeCollection(call(this, "collection", { name: colOf(x) })); },
    findAllCollections(...types) { return call(this, "collections", { types: types.flat().map(String) }).map((c) => new g.Collection(c)); },
    findRecordById(col, id) { return recordOf(call(this, "findById", { col: colOf(col), id: String(id ?? "") })); },
    findRecordsByIds(col, ids) { return recordsOf(call(this, "findByIds", { col: colOf(col), ids: (ids || []).map(String) })); },
    findRecordsByFilter(col, filter, sort, limit, offset, params) {
      return recordsOf(call(this, "findByFilter", { col: colOf(col), filter: String(filter ?? ""), sort: String(sort ?? ""), limit: Number(limit) || 0, offset: Number(offset) || 0, params: params || {} }));
    },
    findFirstRecordByFilter(col, filter, params) {
      const list = recordsOf(call(this, "findByFilter", { col: colOf(col), filter: String(filter ?? ""), sort: "", limit: 1, offset: 0, params: params || {} }));
      if (!list.length) throw vb.notFound();
      return list[0];
    },
    findFirstRecordByData(col, field, value) {
      const f = String(field);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(f)) throw new g.BadRequestError("Invalid field name.");
      const list = recordsOf(call(this, "findByFilter", { col: colOf(col), filter: f + " = {:value}", sort: "", limit: 1, offset: 0, params: { value } }));
      if (!list.length) throw vb.notFound();
      return list[0];
    },
    findAllRecords(col, ...exps) { return recordsOf(call(this, "findByFilter", Object.assign({ col: colOf(col), filter: "", sort: "", limit: 0, offset: 0 }, rawOf(exps)))); },
    countRecords(col, ...exps) { return call(this, "count", Object.assign({ col: colOf(col), filter: "" }, rawOf(exps))); },
    findAuthRecordByEmail(col, email) { return recordOf(call(this, "findAuthByEmail", { col: colOf(col), email: String(email ?? "") })); },
    findAuthRecordByToken(token, ...types) { return recordOf(call(this, "findByToken", { token: String(token ?? ""), types: types.flat().map(String) })); },
    recordQuery(col) { return new RecordQuery(this, col); },
    save(model) { return saveModel(this, model, true); },
    saveNoValidate(model) { return saveModel(this, model, false); },
    delete(model) {
      if (model instanceof g.Record) {
        const app = this;
        vb.deleteRecord(app, model, (r) => call(app, "delete", { col: r.collection().id, id: r.id }));
        return;
      }
      if (vb.deleteModel) return vb.deleteModel(this, model);
      throw new TypeError("$app.delete: only records are supported by vaultbase");
    },
    runInTransaction(fn) {
      if (txOf(this)) { fn(this); return; }
      const base = this;
      let txApp = null;
      let failure = null;
      try {
        N.dataTx((id) => {
          txApp = Object.create(base);
          Object.defineProperty(txApp, "__tx", { value: id });
          Object.defineProperty(txApp, "__after", { value: [] });
          vb.withApp(txApp, () => fn(txApp));
        });
      } catch (err) {
        failure = err;
      }
      const after = txApp ? txApp.__after : [];
      if (failure !== null) {
        for (const a of after) a.fail(failure);
        throw failure;
      }
      for (const a of after) a.ok();
    },
    db() { return db(this); },
    nonconcurrentDB() { return db(this); },
    concurrentDB() { return db(this); },
    settings() { return vb.settingsObject(call(this, "settings", {})); },
    expandRecord(record, expands, fetchFunc) {
      const failed = vb.expandRecords(this, [record], expands);
      return failed;
    },
    expandRecords(records, expands, fetchFunc) { return vb.expandRecords(this, records, expands); },
    canAccessRecord(record, info, rule) {
      if (rule === null || rule === undefined) return !!(info && info.auth && info.auth.isSuperuser && info.auth.isSuperuser());
      return call(this, "canAccess", { col: record.collection().id, id: record.id, rule: String(rule), auth: info && info.auth ? { id: info.auth.id, collectionId: info.auth.collection().id } : null }) === true;
    },
    isTransactional() { return !!txOf(this); },
  };
  Object.assign(vb.appMembers, members);

  function saveModel(app, model, validate) {
    if (model instanceof g.Record) {
      vb.saveRecord(app, model, validate, (r) => nativeSave(app, r, validate));
      return;
    }
    if (vb.saveModel) return vb.saveModel(app, model, validate);
    throw new TypeError("$app.save: only records are supported by vaultbase");
  }

  vb.notFound = () => new g.NotFoundError();

  // `$app.settings()`: the settings JSON with PocketBase's struct-like access.
  vb.settingsObject = function (s) {
    return s;
  };

  // Expands `expands` (PocketBase's `a.b,c` paths) on `records` in place; answers {path: error}.
  vb.expandRecords = function (app, records, expands) {
    const list = (records || []).filter((r) => r && r.collection());
    if (!list.length) return {};
    const paths = (Array.isArray(expands) ? expands : [expands]).map(String).filter((x) => x).join(",");
    if (!paths) return {};
    const byCol = new Map();
    for (const r of list) {
      const id = r.collection().id;
      if (!byCol.has(id)) byCol.set(id, []);
      byCol.get(id).push(r);
    }
    for (const [col, recs] of byCol) {
      const out = call(app, "expand", { col, ids: recs.map((r) => r.id), expand: paths });
      for (const r of recs) {
        const x = out[r.id];
        if (x) r.mergeExpand(x);
      }
    }
    return {};
  };
})(globalThis);
