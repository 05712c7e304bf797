"""Runs SecretVM's reference client with CONFIG overridden from a JSON
argument; the client's own code is unchanged."""
import importlib.util
import json
import sys

spec = importlib.util.spec_from_file_location("secretvm_client", sys.argv[1])
client = importlib.util.module_from_spec(spec)
spec.loader.exec_module(client)
client.CONFIG.update(json.loads(sys.argv[2]))
client.main()
