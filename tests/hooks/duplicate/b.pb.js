// PocketBase refuses to start: the same method and path twice.
routerAdd("GET", "/same", (e) => e.string(200, "b"));
