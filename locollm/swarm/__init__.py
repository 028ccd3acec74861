"The swarm: a registry, a router and a backend answering routed queries, alone or by voting."
