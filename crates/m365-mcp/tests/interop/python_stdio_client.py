"""Drives m365-mcp with the official Python MCP SDK over stdio.

usage: python_stdio_client.py EXE ACCOUNT
The environment (sandbox URLs, data dir, key) is passed through to the
server. Prints one JSON object with what the client saw.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(exe, account):
    params = StdioServerParameters(command=exe, args=["serve"], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            accounts = await session.call_tool("account_list", {})
            bad = await session.call_tool("email_list", {"limit": 0, "account_id": account})
            print(json.dumps({
                "protocol_version": init.protocol_version,
                "server": init.server_info.name,
                "tools": [t.name for t in tools.tools],
                "annotations": {t.name: (t.annotations.model_dump(by_alias=True) if t.annotations else None) for t in tools.tools},
                "account_list": {"is_error": accounts.is_error, "structured": accounts.structured_content},
                "bad_call": {
                    "is_error": bad.is_error,
                    "text": bad.content[0].text if bad.content else None,
                },
            }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
