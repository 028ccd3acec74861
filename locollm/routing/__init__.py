"Routing: which domain's adapter answers a query, how sure the router is, and how well routers do."
