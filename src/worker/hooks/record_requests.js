// The record request hooks (`onRecordsListRequest`, `onRecordViewRequest`,
// `onRecord{Create,Update,Delete}Request`) and `onRecordEnrich`, as PocketBase runs them: the
// request event `e` with `e.collection` and `e.record` (`e.records`/`e.result` for a list),
// the user's handlers, then the default action as the chain's last link — for writes the model
// save (with its own hooks) through `__native.requestWrite`, which is the REST write pipeline
// with the client's rules, then enrich, then the JSON answer. A chain stopped before the
// default action answers an empty 200 unless a handler wrote. Evaluated after app.js.
(function (g) {
  "use strict";
  const N = g.__native;
  const vb = g.__vb;

  // Writes `text` (API JSON made by Rust) as the answer, unless something was written.
  function writeRaw(e, status, text) {
    const res = e.__response;
    if (res.written) return;
    res.written = true;
    res.status = status;
    if (!res.headers.some(([k]) => k === "content-type")) res.headers.push(["content-type", "application/json"]);
    res.body = text;
  }

  // onRecordEnrich over `records`, then (superusers) every hidden field shown again, as
  // PocketBase's autoResolveRecordsFlags does after the chain.
  vb.enrichRecords = function (e, records, superuser) {
    for (const record of records) {
      if (!record) continue;
      const c = record.collection();
      const tags = c ? [c.id, c.name] : [];
      const handlers = vb.handlersOf("onRecordEnrich", tags);
      if (handlers.length) {
        const ev = { app: e.app, record, requestInfo: e.requestInfo ? e.requestInfo() : null };
        const links = handlers.map((h) => vb.hookLink(h));
        links.push(() => {});
        vb.runChain(ev, links);
      }
      // PocketBase's autoResolveRecordsFlags: a superuser sees every field, whatever a hook hid.
      if (superuser && c) {
        for (const f of c.fields) { record.__hide.delete(f.name); record.__show.add(f.name); }
        record.__ignoreEmail = true;
      }
    }
  };

  function hasEnrich(c) {
    return vb.hasHooks("onRecordEnrich", [c.id, c.name]);
  }

  // Answers the record JSON the pipeline wrote (`text`), through the enrich hooks if any.
  function respondRecord(e, c, text, superuser) {
    if (!hasEnrich(c)) { writeRaw(e, 200, text); return; }
    const rec = vb.toRecord(JSON.parse(text), c);
    vb.enrichRecords(e, [rec], superuser);
    e.json(200, rec);
  }

  // What the REST write of `kind` reads of `record`: [kind, its values, its original] as
  // JSON texts, "" where the write reads none (a delete reads no values, only an update reads
  // the original). `__native.requestWrite` takes them, and so does a deferred write.
  function writeArgs(kind, record) {
    const s = record.__s;
    return [kind, kind === "delete" ? "" : JSON.stringify(s.d), kind === "update" ? JSON.stringify(s.o) : ""];
  }

  // The REST write: the API JSON text the client gets ("" for a delete), which also gives the
  // Record its stored values (fields the requester may not see keep theirs). A delete reads
  // no values, and only an update reads the original.
  function requestWrite(kind, record) {
    const body = N.requestWrite(...writeArgs(kind, record));
    let d = {};
    if (body) {
      d = JSON.parse(body);
      delete d.expand;
    }
    return { d, body };
  }

  // What PocketBase's onRecordAuthRequest default action throws once it answered 401 {mfaId}.
  const MFA_REQUIRED = "mfa required";
  function mfaRequired() {
    const err = new Error(MFA_REQUIRED);
    Object.defineProperty(err, "__mfa", { value: true });
    return err;
  }

  // PocketBase's recordAuthResponse: onRecordAuthRequest (e.record, e.token, e.meta,
  // e.authMethod) around the default answer {token, record, meta?}, the record enriched.
  //
  // With `mfaId` (another factor is needed, its MFA session made) the default action answers
  // 401 {mfaId} instead and throws "mfa required", as PocketBase's: e.next() throws it, and
  // the written 401 stands (keepWritten).
  function authResponse(e, record, authMethod, meta, token, mfaId) {
    if (!record) throw new g.BadRequestError("Failed to authenticate.");
    const c = record.collection();
    const ev = Object.create(e);
    ev.collection = c;
    ev.record = record;
    ev.token = token === undefined ? record.newAuthToken() : token;
    ev.meta = meta === undefined ? null : meta;
    ev.authMethod = String(authMethod ?? "");
    vb.fire("onRecordAuthRequest", c ? [c.id, c.name] : [], ev, (ev) => {
      if (mfaId) {
        e.json(401, { mfaId });
        throw mfaRequired();
      }
      ev.record.ignoreEmailVisibility(true);
      vb.enrichRecords(e, [ev.record], !!(c && c.name === "_superusers") || e.hasSuperuserAuth());
      const body = { token: ev.token, record: ev.record };
      if (ev.meta !== null && ev.meta !== undefined) body.meta = ev.meta;
      e.json(200, body);
    });
  }

  // Every $apis member so far, plus the record helpers (the namespace stays strict).
  const apis = {};
  for (const k of Object.keys(g.$apis)) apis[k] = g.$apis[k];
  apis.recordAuthResponse = (e, record, authMethod, meta) => authResponse(e, record, authMethod, meta);
  apis.enrichRecord = (e, record, ...expands) => {
    if (expands.length) vb.expandRecords(e.app, [record], expands.flat());
    vb.enrichRecords(e, [record], e.hasSuperuserAuth());
  };
  apis.enrichRecords = (e, records, ...expands) => {
    if (expands.length) vb.expandRecords(e.app, records, expands.flat());
    vb.enrichRecords(e, records, e.hasSuperuserAuth());
  };
  g.$apis = vb.strictNamespace("$apis.", apis);

  // An auth endpoint's answer with hooks: the record vaultbase authenticated, its token.
  // With `mfaId` (non-empty) another factor is needed: the chain answers 401 {mfaId}.
  vb.authRequest = function (r, cjson, fields, token, method, meta, mfaId) {
    const e = vb.requestEvent(r);
    const c = vb.makeCollection(cjson);
    e.collection = c;
    keepWritten("onRecordAuthRequest", e, () => true, () => authResponse(e, vb.toRecord(fields, c), method, meta === null ? undefined : meta, token, mfaId || undefined));
    return vb.responseOf(e);
  };

  // Runs the rest of a gated flow from its chain's default action (`__native.gateNext` with
  // `reached`, {extra, changes}): e.record becomes the record as the flow stored it, and the
  // flow's answer is written (a sign-in's through onRecordAuthRequest, on this thread).
  function runFlow(e, c, reached) {
    const out = JSON.parse(N.gateNext(JSON.stringify(reached)));
    if (out.record) e.record = vb.toRecord(out.record, c);
    if (out.auth) {
      authResponse(e, e.record, out.auth.method, out.auth.meta === null ? undefined : out.auth.meta, out.auth.token, out.auth.mfaId || undefined);
    } else if (out.response) {
      const res = e.__response;
      if (res.written) return;
      res.written = true;
      res.status = out.response.status;
      for (const h of out.response.headers) res.headers.push(h);
      res.body = out.response.body;
    }
  }

  // Runs a chain whose default action may run a flow (`fired`), keeping the flow's answer
  // when a handler throws after it was written: PocketBase's error handler leaves a written
  // response alone, so such a throw is only logged.
  function keepWritten(name, e, isDone, fired) {
    try {
      fired();
    } catch (err) {
      if (!(isDone() && e.__response.written)) {
        vb.keepFailedHeaders(e);
        throw err;
      }
      // An MFA step's "mfa required" is how its 401 ends the chain, not a failure.
      if (err && (err.__mfa || err.message === MFA_REQUIRED)) return;
      N.log("error", name + " failed after its answer was written: " + String(err && err.message ? err.message : err));
    }
  }

  // onRecordAuthWithPasswordRequest: answers {record: fields|null, response}; a record means
  // the default action authenticated it and nothing was written (vaultbase's auth flow goes
  // on). With `next`, the default action goes on with the sign-in itself (authRule, MFA, the
  // answer through onRecordAuthRequest), as PocketBase's.
  vb.authWithPassword = function (r, cjson, identity, password, fields, next) {
    const e = vb.requestEvent(r);
    const c = vb.makeCollection(cjson);
    e.collection = c;
    e.identity = identity;
    e.password = password;
    e.identityField = "";
    e.record = fields ? vb.toRecord(fields, c) : null;
    let authed = null;
    let done = false;
    keepWritten("onRecordAuthWithPasswordRequest", e, () => done, () => vb.fire("onRecordAuthWithPasswordRequest", [c.id, c.name], e, (e) => {
      if (!e.record || !e.record.validatePassword(e.password)) throw new g.BadRequestError("Failed to authenticate.");
      authed = e.record;
      if (!next) return;
      done = true;
      runFlow(e, c, { extra: { record: Object.assign({}, authed.__o, authed.__d) }, changes: {} });
    }));
    const written = e.__response.written;
    const record = authed && !written ? Object.assign({}, authed.__o, authed.__d) : null;
    return JSON.stringify({ record, response: vb.responseOf(e) });
  };

  // An auth request hook around a flow vaultbase runs itself (the OTP, OAuth2, refresh,
  // verification, password-reset and email-change request and confirm hooks): `e.collection`,
  // `e.record` (or null) and the hook's own fields (`extra`, copied onto e). With
  // `extra.__next` the default action runs the rest of the flow itself (`runFlow`) and
  // answers as PocketBase's does inside the chain, so code after e.next() sees what the flow
  // stored. Without it the default action only marks the chain as passed and the flow goes
  // on in Rust with the fields as the chain left them and `changes`, the fields of e.record a
  // handler changed. Answers {passed, extra, changes, response}; `passed` is false once the
  // chain answered.
  vb.authGate = function (name, r, cjson, fields, extra) {
    const e = vb.requestEvent(r);
    const c = vb.makeCollection(cjson);
    e.collection = c;
    e.record = fields ? vb.toRecord(fields, c) : null;
    const next = !!(extra && extra.__next);
    const keys = Object.keys(extra || {}).filter((k) => k !== "__next");
    for (const k of keys) {
      const v = extra[k];
      // A record-shaped field ({__record: {collection, fields}}) becomes a Record.
      e[k] = v && typeof v === "object" && v.__record ? vb.toRecord(v.__record.fields, vb.makeCollection(v.__record.collection)) : v;
    }
    // The hook's own fields as the chain left them (Records stay behind).
    const fieldsOf = (e) => {
      const out = {};
      for (const k of keys) {
        const v = e[k];
        if (!(v instanceof g.Record)) out[k] = v ?? null;
      }
      return out;
    };
    // The fields of e.record a handler changed (null without a record).
    const changesOf = (rec) => {
      if (!(rec instanceof g.Record)) return null;
      const out = {};
      for (const k of Object.keys(rec.__d)) {
        if (JSON.stringify(rec.__d[k]) !== JSON.stringify(rec.__o[k])) out[k] = rec.__d[k];
      }
      return out;
    };
    let passed = false;
    let done = false;
    let changes = null;
    keepWritten(name, e, () => done, () => vb.fire(name, [c.id, c.name], e, (e) => {
      if (next) {
        done = true;
        return runFlow(e, c, { extra: fieldsOf(e), changes: changesOf(e.record) });
      }
      passed = true;
      changes = changesOf(e.record);
    }));
    return JSON.stringify({ passed: passed && !e.__response.written, extra: fieldsOf(e), changes, response: vb.responseOf(e) });
  };

  // A batch whose items fire request hooks (PocketBase's batch): one transaction, each item's
  // request chain in order with `e.app` the transactional app and the item's write as the
  // default action. An item whose chain stops before the write answers {status: 200, body:
  // null}; a throw fails the batch, and `vb.batchFailed` names the item.
  vb.batchRequest = function (items) {
    const results = [];
    vb.batchFailed = -1;
    g.$app.runInTransaction((txApp) => {
      items.forEach((it, i) => {
        vb.batchFailed = i;
        const c = vb.makeCollection(it.collection);
        it.request.context = "batch";
        const e = vb.requestEvent(it.request);
        e.app = txApp;
        e.collection = c;
        let kind = it.kind;
        let existing = null;
        if (kind !== "create" && it.id) {
          try { existing = txApp.findRecordById(c.id, it.id); } catch (_) { existing = null; }
        }
        if (kind === "upsert") kind = existing ? "update" : "create";
        else if (kind !== "create" && !existing) throw new g.NotFoundError();
        const write = (k, rec) => {
          const body = N.batchWrite(i, k, JSON.stringify({ fields: rec.__d, original: rec.__o, tx: vb.txOf(txApp) }));
          let d = {};
          if (body) { d = JSON.parse(body); delete d.expand; }
          return { d, body };
        };
        let out = null;
        let name;
        let last;
        if (kind === "create" || kind === "update") {
          e.record = kind === "create" ? new g.Record(c) : existing;
          e.record.load(it.body);
          name = kind === "create" ? "onRecordCreateRequest" : "onRecordUpdateRequest";
          last = (e) => {
            vb.saveRecord(e.app, e.record, true, (rec) => { const w = write(kind, rec); out = w.body; return w.d; });
            if (hasEnrich(c)) {
              const rec = vb.toRecord(JSON.parse(out), c);
              vb.enrichRecords(e, [rec], it.request.superuser === true);
              out = JSON.stringify(rec);
            }
          };
        } else {
          e.record = existing;
          name = "onRecordDeleteRequest";
          last = (e) => { vb.deleteRecord(e.app, e.record, (rec) => write("delete", rec)); out = ""; };
        }
        vb.fire(name, [c.id, c.name], e, last);
        const res = e.__response;
        if (res.written) {
          let body = null;
          try { body = res.body ? JSON.parse(res.body) : null; } catch (_) { body = res.body; }
          results.push({ status: res.status, body });
        } else if (out === null) results.push({ status: 200, body: null });
        else if (out === "") results.push({ status: 204, body: null });
        else results.push({ status: 200, body: JSON.parse(out) });
      });
    });
    vb.batchFailed = -1;
    return JSON.stringify(results);
  };

  // onRecordEnrich for a realtime record event (`data` as the subscriber `client` would get
  // it, its fields already cut to what the client may see): PocketBase enriches each
  // subscriber's copy with `e.requestInfo.auth` the client's and context "realtime". Answers
  // the data to send (unchanged when no handler fires or it is not a record event).
  vb.enrichRealtime = function (client, data) {
    let msg;
    try { msg = JSON.parse(data); } catch (_) { return data; }
    if (!msg || typeof msg !== "object" || typeof msg.action !== "string" || !msg.record || typeof msg.record.collectionId !== "string") return data;
    const c = vb.collectionById(msg.record.collectionId);
    if (!c || !hasEnrich(c)) return data;
    const rec = vb.toRecord(msg.record, c);
    // The payload already holds exactly the fields this client may see.
    if (msg.record.email !== undefined) rec.ignoreEmailVisibility(true);
    const cl = vb.makeRealtimeClient(client);
    const auth = cl.get("auth");
    const superuser = !!(auth && auth.collection() && auth.collection().name === "_superusers");
    const info = {
      auth, context: "realtime", method: "GET", query: {}, headers: {}, body: {},
      hasSuperuserAuth: () => superuser,
      isSuperuserAuth: () => superuser,
    };
    // Unlike an API answer, PocketBase does not show a superuser what the hook hid here.
    vb.enrichRecords({ app: vb.baseApp, requestInfo: () => info }, [rec], false);
    msg.record = rec;
    return JSON.stringify(msg);
  };

  // An after-success hook of a write made outside JS (a batch item, an OAuth2 sign-up…).
  vb.afterCommitted = function (name, cjson, d) {
    const c = vb.makeCollection(cjson);
    const record = vb.toRecord(d, c);
    vb.fire(name, [c.id, c.name], { app: vb.baseApp, record }, () => {});
  };

  // Runs one record request; answers vb.responseOf(e).
  vb.recordRequest = function (kind, r, cjson, p) {
    const e = vb.requestEvent(r);
    const c = typeof cjson === "string" ? vb.collectionCached(cjson) : vb.makeCollection(cjson);
    const tags = [c.id, c.name];
    const superuser = r.superuser === true;
    e.collection = c;
    let name;
    let last;
    // With `p.defer` (Rust found that every handler of this chain calls e.next() as its last
    // act and no model or enrich hook fires) the default action only notes the write; Rust
    // makes it once this dispatch has returned, and answers as the write below would. It does
    // so only for the event's own record, saved by the base app, with nothing written yet.
    let deferred = null;
    const deferrable = (e, rec) => p.defer === true && e.record === rec && e.app === vb.baseApp && !e.__response.written;
    switch (kind) {
      case "list": {
        const page = p.page;
        e.records = page.items.map((x) => vb.toRecord(x, c));
        e.result = { page: page.page, perPage: page.perPage, totalItems: page.totalItems, totalPages: page.totalPages, items: e.records };
        name = "onRecordsListRequest";
        last = (e) => {
          vb.enrichRecords(e, e.result.items || e.records, superuser);
          e.json(200, e.result);
        };
        break;
      }
      case "view": {
        e.record = vb.toRecord(p.record, c);
        name = "onRecordViewRequest";
        last = (e) => {
          vb.enrichRecords(e, [e.record], superuser);
          e.json(200, e.record);
        };
        break;
      }
      case "create": {
        const rec = (e.record = new g.Record(c));
        rec.load(p.body);
        name = "onRecordCreateRequest";
        last = (e) => {
          if (deferrable(e, rec)) { deferred = writeArgs("create", rec); return; }
          let text = "";
          vb.saveRecord(e.app, e.record, true, (rec) => { const out = requestWrite("create", rec); text = out.body; return out.d; });
          respondRecord(e, c, text, superuser);
        };
        break;
      }
      case "update": {
        const rec = (e.record = vb.toRecord(p.record, c));
        rec.load(p.body);
        name = "onRecordUpdateRequest";
        last = (e) => {
          if (deferrable(e, rec)) { deferred = writeArgs("update", rec); return; }
          let text = "";
          vb.saveRecord(e.app, e.record, true, (rec) => { const out = requestWrite("update", rec); text = out.body; return out.d; });
          respondRecord(e, c, text, superuser);
        };
        break;
      }
      case "delete": {
        const rec = (e.record = vb.toRecord(p.record, c));
        name = "onRecordDeleteRequest";
        last = (e) => {
          if (deferrable(e, rec)) { deferred = writeArgs("delete", rec); return; }
          vb.deleteRecord(e.app, e.record, (rec) => requestWrite("delete", rec));
          e.noContent(204);
        };
        break;
      }
      default:
        throw new Error("unknown record request " + kind);
    }
    try {
      vb.fire(name, tags, e, last);
    } catch (err) {
      vb.keepFailedHeaders(e);
      throw err;
    }
    if (deferred) return ["defer", deferred[0], deferred[1], deferred[2], e.__response.headers];
    // The response as it was written, read by Rust without another JSON round trip.
    return vb.responseTuple(e.__response);
  };
})(globalThis);
