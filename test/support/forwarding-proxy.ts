import http from 'node:http';
import type net from 'node:net';

/**
 * A reverse proxy in front of Gatehouse that behaves as nginx does with the configuration the
 * README gives: it appends the address it saw to X-Forwarded-For
 * (`$proxy_add_x_forwarded_for`), so whatever the client wrote there stays on the left; it
 * sets X-Forwarded-Proto (`$scheme` of a TLS-terminating proxy: https) and passes Host on.
 *
 * `connectFrom` is the loopback address it connects onwards from (127.0.0.0/8 is all local on
 * Linux), so that each hop of a chain, and so each address Gatehouse could pick, is distinct.
 * `appendForwardedProto` makes it append to X-Forwarded-Proto instead, as some proxies do.
 */
export interface ForwardingProxy {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface ForwardingProxyOptions {
  connectFrom: string;
  forwardedProto?: string;
  appendForwardedProto?: boolean;
}

export async function startForwardingProxy(
  target: string,
  { connectFrom, forwardedProto = 'https', appendForwardedProto = false }: ForwardingProxyOptions,
): Promise<ForwardingProxy> {
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers };
    const seen = req.socket.remoteAddress ?? '';
    headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']}, ${seen}` : seen;
    headers['x-forwarded-proto'] = appendForwardedProto && headers['x-forwarded-proto'] ? `${headers['x-forwarded-proto']}, ${forwardedProto}` : forwardedProto;
    const onward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, localAddress: connectFrom, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        answer.pipe(res);
      },
    );
    onward.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(onward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
