"The research question and its studies: swarm vs base, swarm modes, router scaling, 1.58-bit weights."
