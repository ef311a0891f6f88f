// Stands in for pino/lib/transport.js in the hook bundle (see scripts/bundle.js): taskwire logs
// through pino.destination({ sync: true }) and never starts a transport's worker thread.
'use strict';
module.exports = function transport() {
  throw new Error('pino transports are not bundled into the taskwire hook');
};
