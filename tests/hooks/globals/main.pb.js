// routerUse middlewares wrap system routes too (PocketBase: a global middleware runs for
// every route).
routerUse((e) => {
  if (e.request.url.query().get("block") === "1") {
    throw new ForbiddenError("blocked by a global middleware");
  }
  e.response.header().set("X-Global", "seen " + e.request.url.path);
  e.next();
});
routerUse(new Middleware((e) => {
  if (e.request.url.query().get("answer") === "1") {
    return e.json(200, { answeredBy: "middleware", auth: e.auth ? e.auth.collection().name : null });
  }
  e.next();
}, -5));
routerAdd("GET", "/own", (e) => e.string(200, "own " + (e.get("x") || "")), (e) => { e.set("x", "route-mw"); e.next(); });
