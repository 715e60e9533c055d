routerAdd("GET", "/same", (e) => e.string(200, "a"));
