"""The master process and its worker pools (master(8)'s role in roost).

- master: bind, fork pools, restart with back-off, reload (SIGHUP), stop (SIGTERM)
- worker: one asyncio loop per process serving one service's sockets
- launch: `roost start` daemonising with a readiness pipe
- services: handler registry (handler name -> make_service) and master.cf internals
- plan, bind, pidfile, privileges, logsetup: the pieces the master is made of
"""
