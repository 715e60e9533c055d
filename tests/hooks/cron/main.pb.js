cronAdd("hello", "*/5 * * * *", () => {
  $app.store().set("cron-ran", ($app.store().get("cron-ran") || 0) + 1);
});
cronAdd("gone", "@daily", () => {});
cronRemove("gone");

routerAdd("GET", "/cron-ran", (e) => e.json(200, { n: $app.store().get("cron-ran") || 0, runtime: $app.store().get("runtime-ran") }));
// cronAdd also exists inside handlers (unlike routerAdd and on*).
routerAdd("POST", "/cron-add", (e) => {
  cronAdd("runtime", "@hourly", () => { $app.store().set("runtime-ran", true); });
  e.noContent(204);
});
