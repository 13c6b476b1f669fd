// Preloaded into kinesalite and dynalite (node --require). Both rethrow a
// request stream's 'error' event (`req.on('error', err => { throw err })`),
// so a client that goes away mid-request (a worker killed with SIGKILL by a
// chaos test, a request cancelled by its context) crashes the whole
// emulator, and every later test fails with "connection refused". A client
// abort is not the emulator's failure: log it and carry on. Anything else
// still ends the process, as it would without this file.
'use strict'
const clientGone = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE'])
process.on('uncaughtException', (err) => {
  if (err && (clientGone.has(err.code) || err.message === 'aborted')) {
    console.error(`emulator-guard: client went away mid-request (${err.code || err.message}); ignored`)
    return
  }
  console.error(err)
  process.exit(1)
})
