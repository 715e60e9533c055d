/// Record request, model, after-commit and enrich hooks, and $app data access, as
/// tests/hooks_records.rs drives them. Collections: posts, audit, notes (made by the test).

onRecordCreateRequest((e) => {
  if (e.record.get("title") === "silent") {
    return; // no e.next(): an empty 200 and nothing stored
  }
  // No id before the save.
  $app.store().set("idBefore", e.record.id);
  if (e.record.get("title") === "forbidden") {
    throw new BadRequestError("no forbidden titles");
  }
  // Mutated before the save: the stored row and the answer carry it.
  e.record.set("title", e.record.get("title") + " (hooked)");
  e.record.set("n+", 1);
  e.next();
  // After e.next() the record is persisted and has its id.
  $app.store().set("lastCreated", e.record.id);
}, "posts");

onRecordCreate((e) => {
  // Model hook: fires for REST creates and for $app.save alike.
  if (e.record.getString("title").startsWith("model-veto")) {
    throw new BadRequestError("vetoed by the model hook");
  }
  e.next();
}, "posts");

onRecordAfterCreateSuccess((e) => {
  const audit = new Record($app.findCollectionByNameOrId("audit"));
  audit.set("action", "create");
  audit.set("rid", e.record.id);
  $app.save(audit);
  e.next();
}, "posts");

onRecordEnrich((e) => {
  e.record.hide("secret");
  e.record.withCustomData(true);
  e.record.set("computed", e.record.getString("body").length);
  e.next();
}, "notes");

onRecordViewRequest((e) => {
  if (e.record.getString("body") === "stop") {
    return; // no e.next(): an empty 200
  }
  e.next();
}, "notes");

onRecordsListRequest((e) => {
  e.result.items = e.records.filter((r) => r.getString("body") !== "skip");
  e.next();
}, "notes");

routerAdd("GET", "/t/find", (e) => {
  const q = e.request.url.query().get("q");
  const list = $app.findRecordsByFilter("posts", "title ~ {:q}", "title", 10, 0, { q: q });
  const first = $app.findFirstRecordByFilter("posts", "title = {:t}", { t: list[0].getString("title") });
  return e.json(200, {
    titles: list.map((r) => r.get("title")),
    first: first.id === list[0].id,
    count: $app.countRecords("posts"),
    byIds: $app.findRecordsByIds("posts", [list[0].id]).length,
  });
});

routerAdd("GET", "/t/missing", (e) => {
  $app.findRecordById("posts", "doesnotexist123");
});

routerAdd("POST", "/t/tx", (e) => {
  const mode = e.request.url.query().get("mode");
  try {
    $app.runInTransaction((txApp) => {
      const r = new Record(txApp.findCollectionByNameOrId("audit"));
      r.set("action", "tx-" + mode);
      r.set("rid", "x");
      txApp.save(r);
      // Visible inside the transaction.
      if (txApp.countRecords("audit", $dbx.hashExp({ action: "tx-" + mode })) !== 1) {
        throw new Error("not visible inside");
      }
      if (mode === "rollback") {
        throw new Error("boom");
      }
    });
  } catch (err) {
    // rolled back
  }
  return e.json(200, { count: $app.countRecords("audit", $dbx.hashExp({ action: "tx-" + mode })) });
});

routerAdd("GET", "/t/sql", (e) => {
  const m = new DynamicModel({ n: 0, title: "" });
  $app.db().newQuery("SELECT count(*) AS n, max(title) AS title FROM posts WHERE title != {:x}").bind({ x: "zzz" }).one(m);
  const rows = arrayOf(new DynamicModel({ title: "" }));
  $app.db().newQuery("SELECT title FROM posts ORDER BY title").all(rows);
  return e.json(200, { n: m.n, typeofN: typeof m.n, title: m.title, rows: rows.map((r) => r.title) });
});

routerAdd("GET", "/t/record", (e) => {
  const r = new Record($app.findCollectionByNameOrId("posts"), { title: "x", n: 2, meta: { a: 1 }, tags: ["a"] });
  r.set("n+", 3);
  r.set("tags+", "b");
  r.set("+tags", "c");
  r.set("tags-", "a");
  const meta = r.get("meta");
  return e.json(200, {
    n: r.get("n"),
    tags: r.get("tags"),
    metaA: JSON.parse(meta).a,
    metaIsArray: Array.isArray(meta),
    metaString: String(meta),
    prop: r.title,
    missing: r.get("nope"),
    isNew: r.isNew(),
    json: JSON.parse(JSON.stringify(r)),
  });
});

routerAdd("POST", "/t/save", (e) => {
  const body = e.requestInfo().body;
  const r = new Record($app.findCollectionByNameOrId("posts"));
  r.set("title", body.title);
  try {
    $app.save(r);
  } catch (err) {
    return e.json(400, { error: String(err.message || err) });
  }
  const again = $app.findRecordById("posts", r.id);
  const created = again.get("created");
  again.set("title", body.title + " updated");
  $app.save(again);
  return e.json(200, {
    id: r.id,
    title: $app.findRecordById("posts", r.id).getString("title"),
    originalTitle: again.original().getString("title"),
    createdIsDate: typeof created.string === "function" && created.string().length > 0,
  });
});

onRecordAuthRequest((e) => {
  // e.meta is writable and ends up in the auth answer.
  e.meta = { hooked: true, method: e.authMethod, email: e.record.email() };
  e.next();
}, "users");

routerAdd("POST", "/t/login", (e) => {
  const body = e.requestInfo().body;
  const user = $app.findAuthRecordByEmail("users", body.email);
  if (!user.validatePassword(body.password)) {
    throw new BadRequestError("invalid credentials");
  }
  return $apis.recordAuthResponse(e, user, "custom");
});

onRecordUpdateRequest((e) => {
  e.record.set("title", e.record.original().getString("title") + "->" + e.record.getString("title"));
  e.next();
}, "posts");

onRecordDeleteRequest((e) => {
  if (e.record.getString("title").includes("keep")) {
    throw new ForbiddenError("kept");
  }
  e.next();
}, "posts");

routerAdd("GET", "/t/idbefore", (e) => e.json(200, { id: $app.store().get("idBefore") }));

routerAdd("POST", "/t/invalid", (e) => {
  const r = new Record($app.findCollectionByNameOrId("posts"));
  r.set("code", "toolong"); // posts.code has max 3 in the test's schema
  const caught = e.requestInfo().query.caught === "1";
  if (!caught) {
    $app.save(r);
  }
  try {
    $app.save(r);
  } catch (err) {
    return e.json(200, { message: err.message, status: err.value.status });
  }
});

routerAdd("GET", "/t/missing-caught", (e) => {
  try {
    $app.findRecordById("posts", "nope");
  } catch (err) {
    return e.json(200, { message: err.message, str: String(err) });
  }
});

routerAdd("GET", "/t/authjson", (e) => {
  const u = $app.findAuthRecordByEmail("users", e.requestInfo().query.email);
  return e.json(200, {
    rec: u,
    created: String(u.get("created")),
    createdType: typeof u.get("created"),
    password: u.get("password"),
    hasTokenKey: u.tokenKey().length > 0,
    byData: $app.findFirstRecordByData("users", "email", u.email()).id === u.id,
  });
});

onRecordAuthWithPasswordRequest((e) => {
  if (e.identity === "banned@example.com") {
    throw new ForbiddenError("banned");
  }
  if (e.record === null) {
    return e.json(200, { unknown: e.identity });
  }
  e.next();
}, "users");

routerAdd("GET", "/t/me", (e) => {
  return e.json(200, { auth: e.auth, email: e.auth ? e.auth.email() : null, collection: e.auth ? e.auth.collection().name : null });
});

routerAdd("GET", "/t/misc", (e) => {
  const posts = $app.findCollectionByNameOrId("posts");
  const u = new Record($app.findCollectionByNameOrId("users"));
  u.setEmail("code@example.com");
  u.setPassword("password123"); // no passwordConfirm: that belongs to the API's form
  $app.save(u);
  const stored = $app.findRecordById("users", u.id);
  const one = new Record(posts);
  $app.recordQuery("posts").andWhere($dbx.hashExp({ code: "a" })).limit(1).one(one);
  return e.json(200, {
    byToken: $app.findAuthRecordByToken(u.newAuthToken(), "auth").email(),
    valid: stored.validatePassword("password123"),
    wrong: stored.validatePassword("nope"),
    recordQuery: $app.recordQuery("posts").where($dbx.exp("code != {:c}", { c: "c" })).orderBy("code DESC").all().map((r) => r.getString("code")),
    one: one.getString("code"),
    inCount: $app.countRecords("posts", $dbx.in("code", "a", "b")),
    or: $app.countRecords("posts", $dbx.or($dbx.hashExp({ code: "a" }), $dbx.hashExp({ code: "c" }))),
    not: $app.countRecords("posts", $dbx.not($dbx.hashExp({ code: "a" }))),
    like: $app.countRecords("posts", $dbx.like("code", "b")),
    appName: $app.settings().meta.appName,
    authCollections: $app.findAllCollections("auth").map((c) => c.name).sort(),
  });
});
