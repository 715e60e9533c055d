// PocketBase's `Collection` for hooks and migrations: a JS object over the collection's API
// JSON (the shape `GET /api/collections/{c}` answers), with its fields as a FieldsList.
// Evaluated once per runtime after prelude.js. It owns reading and editing the definition in
// memory; saving it is `$app.save(collection)` (migrations). Constructor for other modules:
// `__vb.makeCollection(json)`.
(function (g) {
  "use strict";
  const vb = g.__vb;

  const RULES = ["listRule", "viewRule", "createRule", "updateRule", "deleteRule"];

  // A field as PocketBase's JSVM shows it: its JSON properties, readable and writable.
  class Field {
    constructor(data) {
      if (data && typeof data === "object") Object.assign(this, data);
    }
    getName() { return this.name; }
    getId() { return this.id; }
    type_() { return this.type; }
    getHidden() { return this.hidden === true; }
    setHidden(v) { this.hidden = !!v; }
    getSystem() { return this.system === true; }
    isMultiple() { return Number(this.maxSelect) > 1; }
  }
  g.Field = Field;
  // `new TextField({...})` etc.: a Field with its type set.
  for (const t of ["text", "number", "bool", "email", "url", "editor", "date", "autodate", "select", "file",
    "relation", "json", "password", "geoPoint"]) {
    const name = t[0].toUpperCase() + t.slice(1) + "Field";
    g[name] = class extends Field {
      constructor(data) { super(data); this.type = t; }
    };
  }

  // `collection.fields`: an array of Fields with PocketBase's FieldsList methods.
  function fieldsList(list) {
    const out = [];
    for (const f of list || []) out.push(f instanceof Field ? f : new Field(f));
    const def = (k, fn) => Object.defineProperty(out, k, { value: fn, enumerable: false, writable: true });
    // A loop, not find(): a record looks up a field on every set and get.
    def("getByName", (n) => {
      for (let i = 0; i < out.length; i++) if (out[i].name === n) return out[i];
      return null;
    });
    def("getById", (id) => out.find((f) => f.id === id) || null);
    def("fieldNames", () => out.map((f) => f.name));
    def("asMap", () => Object.fromEntries(out.map((f) => [f.name, f])));
    def("add", (...fs) => {
      for (const f of fs) {
        const field = f instanceof Field ? f : new Field(f);
        const i = out.findIndex((x) => (field.id && x.id === field.id) || x.name === field.name);
        if (i >= 0) out[i] = field; else out.push(field);
      }
    });
    def("addAt", (pos, ...fs) => {
      let at = Math.max(0, Math.min(Number(pos) || 0, out.length));
      for (const f of fs) {
        const field = f instanceof Field ? f : new Field(f);
        const i = out.findIndex((x) => (field.id && x.id === field.id) || x.name === field.name);
        if (i >= 0) { out.splice(i, 1); if (i < at) at--; }
        out.splice(at++, 0, field);
      }
    });
    def("removeById", (id) => { const i = out.findIndex((f) => f.id === id); if (i >= 0) out.splice(i, 1); });
    def("removeByName", (n) => { const i = out.findIndex((f) => f.name === n); if (i >= 0) out.splice(i, 1); });
    def("toJSON", () => out.map((f) => Object.assign({}, f)));
    return out;
  }
  vb.fieldsList = fieldsList;

  class Collection {
    constructor(data) {
      const d = data && typeof data === "object" ? data : {};
      Object.assign(this, {
        id: "", name: "", type: "base", system: false,
        listRule: null, viewRule: null, createRule: null, updateRule: null, deleteRule: null,
        indexes: [],
      });
      for (const k of Object.keys(d)) if (k !== "fields") this[k] = d[k];
      if (this.type === "" || this.type === undefined) this.type = "base";
      this.fields = fieldsList(d.fields);
      if (!Array.isArray(this.indexes)) this.indexes = [];
    }
    isAuth() { return this.type === "auth"; }
    isBase() { return this.type === "base"; }
    isView() { return this.type === "view"; }
    tableName() { return this.name; }
    baseFilesPath() { return this.id; }
    addIndex(name, unique, columns, where) {
      this.removeIndex(name);
      let sql = "CREATE " + (unique ? "UNIQUE " : "") + "INDEX `" + name + "` ON `" + this.name + "` (" + columns + ")";
      if (where) sql += " WHERE " + where;
      this.indexes.push(sql);
    }
    removeIndex(name) {
      this.indexes = this.indexes.filter((ix) => !new RegExp("INDEX\\s+[`\"']?" + name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "[`\"']?\\s", "i").test(ix));
    }
    getIndex(name) {
      return this.indexes.find((ix) => new RegExp("INDEX\\s+[`\"']?" + name + "[`\"']?\\s", "i").test(ix)) || "";
    }
    toJSON() {
      const out = {};
      for (const k of Object.keys(this)) out[k] = k === "fields" ? this.fields.toJSON() : this[k];
      return out;
    }
    toString() { return JSON.stringify(this); }
  }
  // Rules keep PocketBase's null-versus-empty meaning: null is superusers only.
  for (const r of RULES) Collection[r] = r;
  g.Collection = Collection;

  // Collections by id, so records of one collection share one object per runtime until its
  // definition changes (`updated` differs).
  const cache = new Map();
  // The shared collection of cache key `id@updated`, or null (the caller then sends its JSON).
  vb.collectionCached = function (key) {
    return cache.get(key) || null;
  };
  vb.makeCollection = function (json) {
    if (json === null || json === undefined) return null;
    if (json instanceof Collection) return json;
    const key = json.id + "@" + (json.updated || "");
    let c = cache.get(key);
    if (!c) {
      if (cache.size > 256) cache.clear();
      c = new Collection(json);
      cache.set(key, c);
    }
    return c;
  };
})(globalThis);
