"""process_docs for wikitext2_lines.yaml: WikiText's blank lines (a lone space) are not documents."""


def nonblank(dataset):
    return dataset.filter(lambda doc: doc["text"].strip() != "")
