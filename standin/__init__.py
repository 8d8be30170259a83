"""The local stand-in's Python: haproxy control (`lbctl`), the Prometheus config (`promconf`) and the addresses
of scripts/local.env (`localenv`). Runs on this machine only, for the loopback stand-in of a droplet and a load
balancer; never shipped to hosts.
"""
