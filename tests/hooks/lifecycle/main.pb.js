onBootstrap((e) => {
  e.next();
  $app.store().set("booted", ($app.store().get("booted") || 0) + 1);
});
// A second handler: runs after the first called e.next(), in registration order.
onBootstrap((e) => {
  $app.store().set("order", "second");
  e.next();
});
onTerminate((e) => {
  $app.logger().info("terminating from a hook");
  e.next();
});

routerAdd("GET", "/booted", (e) => e.json(200, { booted: $app.store().get("booted"), order: $app.store().get("order") }));

routerAdd("GET", "/self/{port}", (e) => {
  const res = $http.send({ url: "http://127.0.0.1:" + e.request.pathValue("port") + "/api/health", timeout: 5 });
  e.json(200, { status: res.statusCode, message: res.json.message, type: res.headers["Content-Type"] });
});
routerAdd("GET", "/unreachable", (e) => {
  try {
    $http.send({ url: "http://127.0.0.1:1/", timeout: 2 });
    e.string(200, "no error");
  } catch (err) {
    e.string(200, "threw");
  }
});
routerAdd("GET", "/exec", (e) => e.string(200, toString($os.cmd("echo", "hi").output())));

routerAdd("GET", "/owner/{id}", (e) => e.string(200, "owner"), $apis.requireSuperuserOrOwnerAuth("id"));
routerAdd("GET", "/users-only", (e) => e.json(200, { id: e.auth.id, collection: e.auth.collection().name, superuser: e.hasSuperuserAuth() }), $apis.requireAuth("users"));
routerAdd("GET", "/superusers-only", (e) => e.string(200, "in"), $apis.requireSuperuserAuth());
routerAdd("GET", "/guests-only", (e) => e.string(200, "in"), $apis.requireGuestOnly());
routerAdd("POST", "/limited", (e) => e.string(200, "in"), $apis.bodyLimit(10));
routerAdd("GET", "/ip", (e) => e.json(200, { real: e.realIP(), remote: e.remoteIP() }));
