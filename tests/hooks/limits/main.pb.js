// PocketBase has no limits here (the loop pins a core forever); vaultbase interrupts it.
routerAdd("GET", "/loop", (e) => { $app.store().set("looping", true); while (true) {} });
routerAdd("GET", "/looping", (e) => e.string(200, String($app.store().get("looping") === true)));
routerAdd("GET", "/catching-loop", (e) => { try { while (true) {} } catch (_) { e.string(200, "caught") } });
routerAdd("GET", "/bomb", (e) => {
  const hoard = [];
  while (true) hoard.push("x".repeat(1024) + hoard.length);
});
routerAdd("GET", "/global-bomb", (e) => {
  globalThis.hoard = [];
  while (true) globalThis.hoard.push({ n: globalThis.hoard.length, s: "y".repeat(256) + globalThis.hoard.length });
});
routerAdd("GET", "/ok", (e) => e.string(200, "ok"));
routerAdd("GET", "/sleep", (e) => { sleep(300); e.string(200, "slept"); });
// Globals a handler sets stay in the runtime that ran it (as in PocketBase's executors):
// they show whether a runtime was rebuilt.
routerAdd("POST", "/leak", (e) => { globalThis.leaked = "still here"; e.noContent(204); });
routerAdd("GET", "/leaked", (e) => e.string(200, String(globalThis.leaked)));
