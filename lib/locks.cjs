'use strict'
// Which processes hold a POSIX (fcntl) lock on a file, from Linux's /proc/locks.
//
// LMDB keeps a shared fcntl lock on byte 0 of lock.mdb in every process that has the
// environment open (and locks the byte at its pid while it has readers); LevelDB keeps an
// exclusive fcntl lock on its LOCK file while the database is open. So the pids holding a
// lock on the file's inode are the processes that have the directory open.

const fs = require('node:fs')

/**
 * @param {string} file
 * @returns {{ supported: boolean, pids: number[] }} `supported` is false where /proc/locks
 *   cannot be read (not Linux); `pids` lists the holders (an OFD lock, with no pid, counts as -1).
 */
function lockHolders(file) {
  let text
  try {
    text = fs.readFileSync('/proc/locks', 'utf8')
  } catch {
    return { supported: false, pids: [] }
  }
  let ino
  try {
    ino = String(fs.statSync(file).ino)
  } catch {
    return { supported: true, pids: [] } // no such file: nobody holds it
  }
  const pids = new Set()
  for (const line of text.split('\n')) {
    // "1: POSIX  ADVISORY  READ 29227 fe:00:10028281 0 0" (a blocked waiter has "->" after the id)
    const fields = line.split(/\s+/).filter((f) => f !== '' && f !== '->')
    if (fields.length < 6) continue
    // Matched on the inode alone: on overlay filesystems the device shown here may differ
    // from the one stat() reports. A coincidence with another device errs on the safe side.
    if (fields[5].split(':')[2] !== ino) continue
    pids.add(Number(fields[4]))
  }
  return { supported: true, pids: [...pids] }
}

/** Whether a process with this pid exists (EPERM: it exists, under another user). */
function processAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

module.exports = { lockHolders, processAlive }
