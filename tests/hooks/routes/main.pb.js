// Custom routes: the answers here are PocketBase 0.40's for the same file.
const topLevel = "not visible in handlers";

routerAdd("GET", "/hello/{name}", (e) => {
  e.json(200, { message: "Hello " + e.request.pathValue("name"), q: e.request.url.query().get("q"), top: typeof topLevel });
});

routerAdd("get", "/files/{path...}", (e) => {
  e.string(200, e.request.pathValue("path"));
});

routerAdd("GET", "/exact/{$}", (e) => e.string(200, "exact"));

routerAdd("GET", "/prefix/", (e) => e.string(200, "prefix " + e.request.url.path));

routerAdd("GET", "/empty", (e) => {});

routerAdd("POST", "/echo", (e) => {
  const info = e.requestInfo();
  e.json(201, { body: info.body, query: info.query, ua: info.headers.user_agent, method: info.method, context: info.context, auth: info.auth });
});

routerAdd("GET", "/throws/api", (e) => {
  throw new BadRequestError("bad thing", { title: new ValidationError("x_code", "nope"), other: 1, nested: { a: "b" } });
});
routerAdd("GET", "/throws/plain", (e) => { throw new Error("secret detail"); });
routerAdd("GET", "/throws/reference", (e) => topLevel.length);
routerAdd("GET", "/throws/notfound", (e) => { throw new NotFoundError(); });
routerAdd("GET", "/throws/api500", (e) => { throw new ApiError(500, ""); });

routerAdd("GET", "/headers", (e) => {
  e.response.header().set("X-Custom", "yes");
  e.noContent(204);
});
routerAdd("GET", "/redirect", (e) => e.redirect(302, "/hello/there"));
routerAdd("GET", "/html", (e) => e.html(200, "<b>hi</b>"));

// Middlewares: a Middleware(-1) before a global one, before the route's own: "2134".
routerUse((e) => { e.set("trace", (e.get("trace") || "") + "1"); e.next(); });
routerUse(new Middleware((e) => { e.set("trace", (e.get("trace") || "") + "2"); e.next(); }, -1));
routerAdd("GET", "/trace", (e) => {
  e.set("trace", e.get("trace") + "4");
  e.string(200, e.get("trace"));
}, (e) => { e.set("trace", e.get("trace") + "3"); e.next(); });

// e.next() throws a goja-style wrapper when a later link fails.
routerAdd("GET", "/next-error", (e) => {
  throw new ForbiddenError("deep");
}, (e) => {
  try {
    e.next();
  } catch (err) {
    e.json(200, { message: err.message, status: err.value.status, direct: err.status === undefined });
  }
});
// A middleware that does not call next stops the chain: the handler never runs.
routerAdd("GET", "/stopped", (e) => e.string(200, "handler ran"), (e) => {});

routerAdd("GET", "/guarded", (e) => e.string(200, "in"), $apis.requireAuth());
routerAdd("GET", "/superusers-only", (e) => e.string(200, "in"), $apis.requireSuperuserAuth());
routerAdd("GET", "/guests-only", (e) => e.string(200, "in"), $apis.requireGuestOnly());

routerAdd("POST", "/bind", (e) => {
  const data = new DynamicModel({ title: "", count: 0, ok: false });
  e.bindBody(data);
  e.json(200, data);
});

routerAdd("GET", "/utils", (e) => {
  const jwt = $security.createJWT({ sub: "x" }, "key", 60);
  e.json(200, {
    sha256: $security.sha256("abc"),
    md5: $security.md5("abc"),
    hs256: $security.hs256("abc", "key"),
    len: $security.randomString(12).length,
    sub: $security.parseJWT(jwt, "key").sub,
    env: $os.getenv("VAULTBASE_SURELY_UNSET_VARIABLE"),
    bytes: toString(toBytes("héllo")),
    store: (() => { $app.store().set("k", { n: 1 }); return $app.store().get("k").n; })(),
    required: require(`${__hooks}/lib/util.js`).double(21),
    // A ciphertext PocketBase 0.40 produced with this key.
    decrypted: $security.decrypt("i3KQL/caLc44dmTtapCofw33NPIgUbv1Dw72WWDHVYXdsib1kn2o8UzcZCsm2NcFsw==", "abcdefghijklmnopqrstuvwxyz012345"),
    roundTrip: $security.decrypt($security.encrypt("again", "abcdefghijklmnopqrstuvwxyz012345"), "abcdefghijklmnopqrstuvwxyz012345"),
    relative: require(`${__hooks}/lib/util.js`).config.name,
    unmarshaled: (() => { const m = new DynamicModel({ a: 0, c: true }); unmarshal({ a: 1, b: "x" }, m); return m; })(),
  });
});

routerAdd("GET", "/async", async (e) => {
  const v = await Promise.resolve(7);
  e.json(200, { v });
});

routerAdd("GET", "/unsupported", (e) => $app.findSomethingImaginary());

routerAdd("GET", "/log", (e) => {
  $app.logger().info("hello from a hook", "answer", 42);
  e.noContent(204);
});
