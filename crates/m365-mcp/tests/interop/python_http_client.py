"""Drives m365-mcp with the official Python MCP SDK over Streamable HTTP.

usage: python_http_client.py URL TOKEN ACCOUNT
Lists tools and calls a cached read twice; prints one JSON object with what
the client saw.
"""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url, token, account):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await session.list_tools()
                first = await session.call_tool("email_list", {"account_id": account, "limit": 5})
                second = await session.call_tool("email_list", {"account_id": account, "limit": 5})
                print(json.dumps({
                    "protocol_version": init.protocol_version,
                    "server": init.server_info.name,
                    "tools": [t.name for t in tools.tools],
                    "first": {"is_error": first.is_error, "structured": first.structured_content},
                    "second": {"is_error": second.is_error, "structured": second.structured_content},
                }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
