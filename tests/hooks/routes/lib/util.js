// Relative requires resolve against this module's directory.
module.exports = { double: (n) => n * 2, config: require("./config.json") };
