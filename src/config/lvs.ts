/**
 * The virtual_server half of keepalived.conf (virtual_server_group, virtual_server, real_server
 * and the checker blocks) -> ServiceConfig: keywords of the top level, registered in index.ts's
 * root table. Filled by the config-lvs work; empty until then, so those keywords are unknown.
 */
import type { ServiceConfig } from '../model/types.ts';
import type { Table } from './schema.ts';

/** Top-level keywords that build the ServiceConfig. */
export const lvsKeywords: Table<ServiceConfig> = {};
