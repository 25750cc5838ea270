const http = require("http");
const fs = require("fs");
const isNumber = require("is-number");

http
  .createServer((req, res) => {
    const built = fs.readFileSync("built.txt", "utf8");
    res.end(`is-number(5)=${isNumber(5)}; ${built}; NODE_ENV=${process.env.NODE_ENV}`);
  })
  .listen(process.env.PORT);
