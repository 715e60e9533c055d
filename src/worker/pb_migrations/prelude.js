// The JS side of a migration run: PocketBase's `migrate()` and the small Collection/Field/app
// surface its dashboard generates, as plain JS objects over the collection JSON model. Every
// database step is one call of the host function `__vb_host(op, json)`, which answers
// `{"ok": value}` or `{"error": message}`; the validation is the Rust side's (the same as
// `POST /api/collections`), never repeated here.
(function (g) {
  "use strict";
  const hostFn = g.__vb_host;
  delete g.__vb_host;

  function host(op, payload) {
    const answer = JSON.parse(hostFn(op, JSON.stringify(payload === undefined ? null : payload)));
    if (answer.error !== undefined) {
      throw new Error(answer.error);
    }
    return answer.ok;
  }

  function copy(v) {
    return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
  }

  class Field {
    constructor(data) {
      Object.assign(this, copy(data || {}));
    }
  }
  const typedFields = {
    TextField: "text", NumberField: "number", BoolField: "bool", EmailField: "email", URLField: "url",
    EditorField: "editor", DateField: "date", AutodateField: "autodate", SelectField: "select",
    FileField: "file", RelationField: "relation", JSONField: "json", PasswordField: "password",
    GeoPointField: "geoPoint",
  };
  for (const [name, type] of Object.entries(typedFields)) {
    g[name] = class extends Field {
      constructor(data) {
        super(data);
        this.type = type;
      }
    };
  }

  function asField(f) {
    return f instanceof Field ? f : new Field(f);
  }

  // PocketBase's FieldsList: an array of fields whose `add` replaces a field with the same id
  // (or, without an id, the same name) in place instead of appending a duplicate.
  class FieldsList extends Array {
    indexOfField(f) {
      if (f.id) {
        const i = this.findIndex((x) => x.id === f.id);
        if (i >= 0) return i;
      }
      return f.name ? this.findIndex((x) => x.name === f.name && (!x.id || !f.id)) : -1;
    }
    add(...fields) {
      for (const f of fields.map(asField)) {
        const i = this.indexOfField(f);
        if (i >= 0) this[i] = f;
        else this.push(f);
      }
    }
    addAt(pos, ...fields) {
      let at = Math.max(0, Math.min(Number(pos) || 0, this.length));
      for (const f of fields.map(asField)) {
        const i = this.indexOfField(f);
        if (i >= 0) {
          this.splice(i, 1);
          if (i < at) at--;
        }
        this.splice(at, 0, f);
        at++;
      }
    }
    getById(id) {
      return this.find((f) => f.id === id) || null;
    }
    getByName(name) {
      return this.find((f) => f.name === name) || null;
    }
    removeById(id) {
      const i = this.findIndex((f) => f.id === id);
      if (i >= 0) this.splice(i, 1);
    }
    removeByName(name) {
      const i = this.findIndex((f) => f.name === name);
      if (i >= 0) this.splice(i, 1);
    }
    fieldNames() {
      return this.map((f) => f.name);
    }
    asMap() {
      return Object.fromEntries(this.map((f) => [f.name, f]));
    }
  }

  function fieldsList(list) {
    const out = new FieldsList();
    for (const f of list || []) out.push(asField(f));
    return out;
  }

  class Collection {
    constructor(data) {
      this.id = "";
      this.name = "";
      this.type = "base";
      this.system = false;
      this.fields = new FieldsList();
      this.indexes = [];
      this.listRule = null;
      this.viewRule = null;
      this.createRule = null;
      this.updateRule = null;
      this.deleteRule = null;
      unmarshal(data || {}, this);
    }
    isBase() { return this.type === "base"; }
    isAuth() { return this.type === "auth"; }
    isView() { return this.type === "view"; }
    addIndex(name, unique, columns, where) {
      let sql = `CREATE ${unique ? "UNIQUE " : ""}INDEX \`${name}\` ON \`${this.name}\` (${columns})`;
      if (where) sql += ` WHERE ${where}`;
      this.removeIndex(name);
      this.indexes.push(sql);
    }
    removeIndex(name) {
      const re = new RegExp("INDEX\\s+(IF\\s+NOT\\s+EXISTS\\s+)?[`\"\\[]?" + name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "[`\"\\]]?\\s", "i");
      this.indexes = this.indexes.filter((sql) => !re.test(sql));
    }
    getIndex(name) {
      return this.indexes.find((sql) => sql.includes(name)) || "";
    }
  }

  // Patches `target` with `data` as Go's JSON unmarshal would: keys present replace the
  // target's, `fields` as a whole list.
  function unmarshal(data, target) {
    if (data === null || typeof data !== "object" || target === null || typeof target !== "object") {
      throw new Error("unmarshal expects two objects");
    }
    for (const [k, v] of Object.entries(copy(data))) {
      if (k === "fields" && target instanceof Collection) target.fields = fieldsList(v);
      else target[k] = v;
    }
    return target;
  }

  class Settings {
    constructor(data) {
      Object.assign(this, copy(data || {}));
    }
  }

  // A record for seed data. Only what was set since it was loaded is sent on save, so a
  // record read with findRecordById and saved back never re-submits stored values (such as
  // a password hash) as input.
  class Record {
    constructor(collection, data) {
      if (!collection) throw new Error("new Record needs a collection");
      Object.defineProperty(this, "__collection", { value: collection, enumerable: false, writable: true });
      Object.defineProperty(this, "__data", { value: {}, enumerable: false, writable: true });
      Object.defineProperty(this, "__dirty", { value: new Set(), enumerable: false, writable: true });
      if (data) this.load(data);
    }
    get id() { return this.__data.id || ""; }
    set id(v) { this.set("id", v); }
    collection() { return this.__collection; }
    get(k) { return this.__data[k] === undefined ? null : this.__data[k]; }
    set(k, v) { this.__data[k] = copy(v); this.__dirty.add(k); }
    load(data) { for (const [k, v] of Object.entries(data || {})) this.set(k, v); }
    getString(k) { const v = this.get(k); return v === null ? "" : String(v); }
    getInt(k) { return Math.trunc(Number(this.get(k)) || 0); }
    getFloat(k) { return Number(this.get(k)) || 0; }
    getBool(k) { return !!this.get(k); }
    setPassword(pw) { this.set("password", pw); }
    setEmail(v) { this.set("email", v); }
    setVerified(v) { this.set("verified", !!v); }
    email() { return this.getString("email"); }
    verified() { return this.getBool("verified"); }
    toJSON() { return copy(this.__data); }
    __changes() {
      const out = {};
      if (this.__data.id) out.id = this.__data.id;
      for (const k of this.__dirty) out[k] = copy(this.__data[k]);
      return out;
    }
    __loaded(data) {
      this.__data = copy(data || {});
      this.__dirty = new Set();
      return this;
    }
  }

  function collectionKey(c) {
    if (c instanceof Collection) return c.id || c.name;
    return String(c);
  }

  function bindParams(sql, params) {
    return { sql: String(sql), params: copy(params || {}) };
  }

  class Query {
    constructor(sql) {
      this.sql = sql;
      this.params = {};
    }
    bind(params) {
      Object.assign(this.params, params || {});
      return this;
    }
    execute() {
      host("exec", bindParams(this.sql, this.params));
    }
    all(target) {
      const rows = host("query", bindParams(this.sql, this.params));
      if (Array.isArray(target)) {
        target.length = 0;
        for (const row of rows) target.push(Object.assign(target.__model ? new target.__model() : {}, row));
        return;
      }
      return rows;
    }
    one(target) {
      const rows = host("query", bindParams(this.sql + "", this.params));
      if (rows.length === 0) throw new Error("sql: no rows in result set");
      if (target && typeof target === "object") {
        Object.assign(target, rows[0]);
        return;
      }
      return rows[0];
    }
  }

  class DynamicModel {
    constructor(shape) {
      Object.assign(this, copy(shape || {}));
    }
  }

  function arrayOf(model) {
    const out = [];
    Object.defineProperty(out, "__model", { value: model && model.constructor, enumerable: false });
    return out;
  }

  const app = {
    findCollectionByNameOrId(idOrName) {
      const c = host("findCollection", String(idOrName));
      if (c === null) throw new Error("sql: no rows in result set");
      return new Collection(c);
    },
    findAllCollections(...types) {
      return host("allCollections", types).map((c) => new Collection(c));
    },
    save(model) {
      if (model instanceof Collection) {
        unmarshal(host("saveCollection", model), model);
      } else if (model instanceof Settings) {
        unmarshal(host("saveSettings", model), model);
      } else if (model instanceof Record) {
        const saved = host("saveRecord", { collection: collectionKey(model.collection()), data: model.__changes() });
        model.__loaded(saved);
      } else {
        throw new Error("app.save: expected a Collection, a Record or the settings");
      }
    },
    saveNoValidate(model) {
      return app.save(model);
    },
    delete(model) {
      if (model instanceof Collection) {
        host("deleteCollection", collectionKey(model));
      } else if (model instanceof Record) {
        host("deleteRecord", { collection: collectionKey(model.collection()), id: model.id });
      } else {
        throw new Error("app.delete: expected a Collection or a Record");
      }
    },
    importCollections(collections, deleteMissing) {
      host("importCollections", { collections: copy(collections), deleteMissing: !!deleteMissing });
    },
    settings() {
      return new Settings(host("settings", null));
    },
    findRecordById(collection, id) {
      const data = host("findRecord", { collection: collectionKey(collection), id: String(id) });
      if (data === null) throw new Error("sql: no rows in result set");
      return new Record(app.findCollectionByNameOrId(collectionKey(collection))).__loaded(data);
    },
    db() {
      return { newQuery: (sql) => new Query(sql) };
    },
    runInTransaction(fn) {
      // A migration already runs in one transaction: nesting shares it, as PocketBase's does.
      return fn(app);
    },
    logger() {
      const log = (level) => (msg, ...kv) => host("log", { level, msg: String(msg), kv: copy(kv) });
      return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
    },
    isTransactional() {
      return true;
    },
  };

  let registered = null;
  function migrate(up, down) {
    if (typeof up !== "function") throw new Error("migrate(up, down): up must be a function");
    if (down !== undefined && down !== null && typeof down !== "function") {
      throw new Error("migrate(up, down): down must be a function");
    }
    if (registered !== null) throw new Error("migrate() may be called only once per file");
    registered = { up, down: down || null };
  }

  g.migrate = migrate;
  g.Collection = Collection;
  g.Field = Field;
  g.Record = Record;
  g.DynamicModel = DynamicModel;
  g.arrayOf = arrayOf;
  g.unmarshal = unmarshal;
  g.$app = app;
  g.console = {
    log: (...a) => host("log", { level: "info", msg: a.map(String).join(" "), kv: [] }),
  };
  g.console.info = g.console.log;
  g.console.debug = g.console.log;
  g.console.warn = (...a) => host("log", { level: "warn", msg: a.map(String).join(" "), kv: [] });
  g.console.error = (...a) => host("log", { level: "error", msg: a.map(String).join(" "), kv: [] });
  g.__vb_run = function (direction) {
    if (registered === null) throw new Error("the file does not call migrate(up, down)");
    const fn = direction === "up" ? registered.up : registered.down;
    if (fn) fn(app);
  };
})(globalThis);
