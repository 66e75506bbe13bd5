def test_the_api_root_points_to_the_docs_and_the_resources(client):
    response = client.get("/api/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert set(response.json()) == {"docs", "schema", "login", "me", "tenants"}
    assert response.json()["docs"].endswith("/api/docs/")
