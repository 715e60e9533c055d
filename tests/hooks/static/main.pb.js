routerAdd("GET", "/app/{path...}", $apis.static(`${__hooks}/pb_public`, true));
routerAdd("GET", "/strict/{path...}", $apis.static(`${__hooks}/pb_public`, false));
