"""Run in its own process (chromadb caches clients per path): `add PATH` builds a collection from fixed
embeddings (no model download), `query PATH` prints the nearest ids of fixed queries as JSON."""

import json
import random
import sys

import chromadb

DIM = 16
COUNT = 400


def vectors():
    rnd = random.Random(42)
    return [[rnd.random() for _dim in range(DIM)] for _row in range(COUNT)]


def main():
    action, path = sys.argv[1], sys.argv[2]
    client = chromadb.PersistentClient(path=path)
    embeddings = vectors()
    if action == "add":
        collection = client.get_or_create_collection("docs", embedding_function=None)
        for start in range(0, COUNT, 100):
            collection.add(ids=["doc-%d" % i for i in range(start, start + 100)],
                           embeddings=embeddings[start:start + 100],
                           documents=["document number %d" % i for i in range(start, start + 100)],
                           metadatas=[{"n": i, "even": i % 2 == 0} for i in range(start, start + 100)])
    collection = client.get_collection("docs", embedding_function=None)
    result = collection.query(query_embeddings=[embeddings[i] for i in (3, 77, 250)], n_results=5,
                              where={"even": True}, include=["documents", "metadatas", "distances"])
    print(json.dumps({"count": collection.count(), "ids": result["ids"], "documents": result["documents"],
                      "distances": [[round(d, 6) for d in row] for row in result["distances"]]}))


if __name__ == "__main__":
    main()
