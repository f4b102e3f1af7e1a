/**
 * The floor under every idle RSS figure: plain node (as `npm start` runs Gatehouse, compiled)
 * and an HTTP server answering 200, nothing else loaded.
 */
import http from 'node:http';

const server = http.createServer((_req, res) => res.end('ok')).listen(Number(process.env.PORT ?? 3998));
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
