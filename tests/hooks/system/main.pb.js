routerAdd("GET", "/fine", (e) => e.string(200, "fine"));
// vaultbase's own route: a custom route may not replace it.
routerAdd("GET", "/api/collections/{collection}/records", (e) => e.string(200, "shadowed"));
