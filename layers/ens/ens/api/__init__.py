"""HTTP presentation shared by ENS's API handlers (problem documents, request envelope)."""
