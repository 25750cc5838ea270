const express = require("express");

const app = express();
app.get("/", (req, res) => {
  res.send(`express says ${process.env.GREETING || "hello"} (NODE_ENV=${process.env.NODE_ENV})\n`);
});
app.listen(process.env.PORT, () => console.log(`listening on ${process.env.PORT}`));
