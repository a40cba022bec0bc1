// The sample application's Node process, run by PM2 on the rebuilt instance (playbooks/dr_rebuild_ec2.yml).
// GET /health answers 200 "ok web <n>" when the restored uploads directory (UPLOADS) lists n entries, else 503.
"use strict";
const fs = require("fs");
const http = require("http");

http.createServer((req, res) => {
  let status = 200;
  let body;
  if (req.url !== "/health") {
    status = 404;
    body = "not found";
  } else {
    try {
      body = "ok web " + fs.readdirSync(process.env.UPLOADS).length;
    } catch (err) {
      status = 503;
      body = "uploads: " + err.message;
    }
  }
  res.writeHead(status, {"Content-Type": "text/plain"});
  res.end(body + "\n");
}).listen(Number(process.env.PORT), "127.0.0.1");
