// Starts the atproto reference servers (@atproto/dev-env: a PLC directory, a PDS, the bsky
// AppView and the services it needs) for `make test-peers`, every one on 127.0.0.1.
//
// Run with the Node 22 that install.sh installed, from the installed directory:
//   DB_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/<db> REDIS_HOST=127.0.0.1:<port> \
//     node start.mjs
// When everything is up it prints one JSON line on stdout: the URLs of the PDS, the AppView,
// the PLC directory and of a small control server (POST /process waits until the AppView has
// indexed everything the PDS has written, so a test never races the firehose). SIGTERM or
// SIGINT closes the network and exits. Logs go to stderr.
import net from 'node:net'
import http from 'node:http'

// The servers listen on a port only (all interfaces). Nothing of a test peer may be
// reachable from outside the machine, so a listen() without a host gets 127.0.0.1.
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const first = args[0]
  if (first === undefined || typeof first === 'function') {
    return listen.call(this, 0, '127.0.0.1', ...args.slice(first === undefined ? 1 : 0))
  }
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    const host = typeof args[1] === 'string' ? [] : ['127.0.0.1']
    return listen.call(this, Number(first), ...host, ...args.slice(1))
  }
  if (first && typeof first === 'object' && first.port !== undefined && !first.host &&
      !first.path) {
    return listen.call(this, { ...first, host: '127.0.0.1' }, ...args.slice(1))
  }
  return listen.apply(this, args)
}

const { TestNetwork } = await import('@atproto/dev-env')

const dbPostgresUrl = process.env.DB_POSTGRES_URL
if (!dbPostgresUrl || !process.env.REDIS_HOST) {
  console.error('start.mjs needs DB_POSTGRES_URL and REDIS_HOST')
  process.exit(2)
}

const network = await TestNetwork.create({
  dbPostgresUrl,
  dbPostgresSchema: process.env.DB_POSTGRES_SCHEMA || 'peers',
  pds: { hostname: 'localhost' },
})

let queue = Promise.resolve()
const control = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/process') {
    res.writeHead(404).end()
    return
  }
  // one at a time: processAll is not meant to run concurrently with itself
  queue = queue.then(() => network.processAll(10_000)).then(
    () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'),
    (err) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
  )
})
await new Promise((resolve) => control.listen(0, '127.0.0.1', resolve))

let closing = false
const stop = async () => {
  if (closing) return
  closing = true
  control.close()
  try {
    await network.close()
  } catch (err) {
    console.error('closing the network:', err)
  }
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

process.stdout.write(JSON.stringify({
  pds: network.pds.url,
  appview: network.bsky.url,
  plc: network.plc.url,
  control: `http://127.0.0.1:${control.address().port}`,
  pid: process.pid,
}) + '\n')
