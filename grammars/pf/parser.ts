/**
 * A chevrotain CstParser for the pf.conf statements lbc emits. The rule shapes
 * follow pf.conf(5) GRAMMAR and pfctl's parse.y (FreeBSD: natrule, pool_opts,
 * redirpool, state_opt_item, tabledef; OpenBSD: pfrule with filter_opt RDRTO,
 * PROBABILITY, redirspec with optweight). One parser instance is created at
 * module load and reused for every input (chevrotain's recommended use).
 */
import { CstParser, type CstNode, type IToken } from 'chevrotain';
import * as T from './lexer.js';

export class PfCstParser extends CstParser {
  constructor() {
    super(T.allTokens, { recoveryEnabled: false, maxLookahead: 3, nodeLocationTracking: 'full' });
    this.performSelfAnalysis();
  }

  public file = this.RULE('file', () => {
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Newline) },
        { ALT: () => this.SUBRULE(this.statement) },
      ]);
    });
  });

  private statement = this.RULE('statement', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.tableStmt) },
      { ALT: () => this.SUBRULE(this.rdrStmt) },
      { ALT: () => this.SUBRULE(this.natStmt) },
      { ALT: () => this.SUBRULE(this.filterStmt) },
      { ALT: () => this.SUBRULE(this.setStmt) },
    ]);
  });

  private setStmt = this.RULE('setStmt', () => {
    this.CONSUME(T.Set);
    this.CONSUME(T.Timeout);
    this.CONSUME(T.Word, { LABEL: 'name' });
    this.CONSUME(T.NumberLit, { LABEL: 'seconds' });
  });

  private tableStmt = this.RULE('tableStmt', () => {
    this.CONSUME(T.Table);
    this.CONSUME(T.Lt);
    this.CONSUME(T.Word, { LABEL: 'name' });
    this.CONSUME(T.Gt);
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Persist, { LABEL: 'flag' }) },
        { ALT: () => this.CONSUME(T.Const, { LABEL: 'flag' }) },
        { ALT: () => this.CONSUME(T.Counters, { LABEL: 'flag' }) },
      ]);
    });
    this.OPTION(() => {
      this.CONSUME(T.LBrace, { LABEL: 'open' });
      this.MANY2(() => {
        this.OR2([
          { ALT: () => this.CONSUME(T.Newline) },
          { ALT: () => this.CONSUME(T.Comma) },
          { ALT: () => this.SUBRULE(this.tableEntry) },
        ]);
      });
      this.CONSUME(T.RBrace);
    });
  });

  private tableEntry = this.RULE('tableEntry', () => {
    this.SUBRULE(this.address);
    this.OPTION(() => {
      this.CONSUME(T.Weight);
      this.CONSUME(T.NumberLit, { LABEL: 'weight' });
    });
  });

  private address = this.RULE('address', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Ipv4Address, { LABEL: 'addr' }) },
      { ALT: () => this.CONSUME(T.Ipv6Address, { LABEL: 'addr' }) },
    ]);
    this.OPTION(() => {
      this.CONSUME(T.Slash);
      this.CONSUME(T.NumberLit, { LABEL: 'prefix' });
    });
  });

  /** FreeBSD classic: rdr [pass] [on IF] [af] [proto P] from … to … [tag T] -> pool [port …] [pool options] (parse.y natrule). */
  private rdrStmt = this.RULE('rdrStmt', () => {
    this.OPTION(() => this.CONSUME(T.No));
    this.CONSUME(T.Rdr);
    this.OPTION2(() => this.CONSUME(T.Pass));
    this.SUBRULE(this.ruleHead);
    this.OPTION3(() => {
      this.CONSUME(T.Tag);
      this.CONSUME(T.Word, { LABEL: 'tag' });
    });
    this.OPTION4(() => {
      this.CONSUME(T.Arrow);
      this.SUBRULE(this.pool);
    });
  });

  /**
   * FreeBSD classic source NAT: nat [pass] [on IF] [af] [proto P] from … to … [tag T] [tagged T] -> ADDR | (IF)
   * (parse.y natrule: nataction interface af proto fromto tag tagged rtable redirpool pool_opts).
   */
  private natStmt = this.RULE('natStmt', () => {
    this.CONSUME(T.Nat);
    this.OPTION(() => this.CONSUME(T.Pass));
    this.SUBRULE(this.ruleHead);
    this.OPTION2(() => {
      this.CONSUME(T.Tag);
      this.CONSUME(T.Word, { LABEL: 'tag' });
    });
    this.OPTION3(() => {
      this.CONSUME(T.Tagged);
      this.CONSUME2(T.Word, { LABEL: 'tagged' });
    });
    this.CONSUME(T.Arrow);
    this.SUBRULE(this.natTarget);
  });

  /** The new source: an address, or (IF) for the interface's address as it changes (pf.conf(5) TRANSLATION). */
  private natTarget = this.RULE('natTarget', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.address) },
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.CONSUME(T.Word, { LABEL: 'ifname' });
          this.CONSUME(T.RParen);
        },
      },
    ]);
  });

  /** [on IF] [af] [proto P] (all | [from HOST [port N]] [to HOST [port N]]) */
  private ruleHead = this.RULE('ruleHead', () => {
    this.OPTION(() => {
      this.CONSUME(T.On);
      this.CONSUME(T.Word, { LABEL: 'ifname' });
    });
    this.OPTION2(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Inet, { LABEL: 'af' }) },
        { ALT: () => this.CONSUME(T.Inet6, { LABEL: 'af' }) },
      ]);
    });
    this.OPTION3(() => {
      this.CONSUME(T.Proto);
      this.OR2([
        { ALT: () => this.CONSUME(T.Tcp, { LABEL: 'proto' }) },
        { ALT: () => this.CONSUME(T.Udp, { LABEL: 'proto' }) },
        { ALT: () => this.CONSUME(T.Carp, { LABEL: 'proto' }) },
        { ALT: () => this.CONSUME(T.Pfsync, { LABEL: 'proto' }) },
      ]);
    });
    this.OR3([
      { ALT: () => this.CONSUME(T.All) },
      {
        ALT: () => {
          this.OPTION4(() => {
            this.CONSUME(T.From);
            this.SUBRULE(this.hostSpec, { LABEL: 'src' });
            this.OPTION5(() => {
              this.CONSUME(T.Port);
              this.SUBRULE(this.portSpec, { LABEL: 'srcPort' });
            });
          });
          this.OPTION6(() => {
            this.CONSUME(T.To);
            this.SUBRULE2(this.hostSpec, { LABEL: 'dst' });
            this.OPTION7(() => {
              this.CONSUME2(T.Port);
              this.SUBRULE2(this.portSpec, { LABEL: 'dstPort' });
            });
          });
        },
      },
    ]);
  });

  private hostSpec = this.RULE('hostSpec', () => {
    this.OPTION(() => this.CONSUME(T.Bang, { LABEL: 'not' }));
    this.OR([
      { ALT: () => this.CONSUME(T.Any) },
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.CONSUME(T.Word, { LABEL: 'ifname' });
          this.CONSUME(T.RParen);
        },
      },
      { ALT: () => this.SUBRULE(this.tableRef) },
      { ALT: () => this.SUBRULE(this.address) },
    ]);
  });

  private tableRef = this.RULE('tableRef', () => {
    this.CONSUME(T.Lt);
    this.CONSUME(T.Word, { LABEL: 'name' });
    this.CONSUME(T.Gt);
  });

  private portSpec = this.RULE('portSpec', () => {
    this.CONSUME(T.NumberLit, { LABEL: 'from' });
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      this.CONSUME2(T.NumberLit, { LABEL: 'to' });
    });
  });

  /** The redirection pool: host | { host [weight N], … } | <table>, then [port P[:P2|:*]] and pool options. */
  private pool = this.RULE('pool', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.tableRef) },
      { ALT: () => this.SUBRULE(this.poolHost) },
      {
        ALT: () => {
          this.CONSUME(T.LBrace, { LABEL: 'open' });
          this.MANY(() => {
            this.OR2([
              { ALT: () => this.CONSUME(T.Newline) },
              { ALT: () => this.CONSUME(T.Comma) },
              { ALT: () => this.SUBRULE2(this.poolHost) },
            ]);
          });
          this.CONSUME(T.RBrace);
        },
      },
    ]);
    this.OPTION(() => {
      this.CONSUME(T.Port);
      this.CONSUME(T.NumberLit, { LABEL: 'portFrom' });
      this.OPTION2(() => {
        this.CONSUME(T.Colon);
        this.OR3([
          { ALT: () => this.CONSUME2(T.NumberLit, { LABEL: 'portTo' }) },
          { ALT: () => this.CONSUME(T.Star, { LABEL: 'portStar' }) },
        ]);
      });
    });
    this.MANY2(() => this.SUBRULE(this.poolOpt));
  });

  private poolHost = this.RULE('poolHost', () => {
    this.SUBRULE(this.address);
    this.OPTION(() => {
      this.CONSUME(T.Weight);
      this.CONSUME(T.NumberLit, { LABEL: 'weight' });
    });
  });

  private poolOpt = this.RULE('poolOpt', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.RoundRobin, { LABEL: 'type' }) },
      { ALT: () => this.CONSUME(T.Random, { LABEL: 'type' }) },
      { ALT: () => this.CONSUME(T.Bitmask, { LABEL: 'type' }) },
      { ALT: () => this.CONSUME(T.LeastStates, { LABEL: 'type' }) },
      {
        ALT: () => {
          this.CONSUME(T.SourceHash, { LABEL: 'type' });
          this.OPTION(() => {
            this.OR2([
              { ALT: () => this.CONSUME(T.HexKey, { LABEL: 'key' }) },
              { ALT: () => this.CONSUME(T.QuotedString, { LABEL: 'key' }) },
            ]);
          });
        },
      },
      { ALT: () => this.CONSUME(T.StickyAddress, { LABEL: 'sticky' }) },
    ]);
  });

  /** pass|match|block [drop|return] [in|out] [quick] head filter-options (pf.conf(5) pf-rule, action and blockspec). */
  private filterStmt = this.RULE('filterStmt', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Pass, { LABEL: 'action' }) },
      { ALT: () => this.CONSUME(T.Match, { LABEL: 'action' }) },
      { ALT: () => this.CONSUME(T.Block, { LABEL: 'action' }) },
    ]);
    this.OPTION3(() => {
      this.OR3([
        { ALT: () => this.CONSUME(T.Drop, { LABEL: 'policy' }) },
        { ALT: () => this.CONSUME(T.Return, { LABEL: 'policy' }) },
      ]);
    });
    this.OPTION(() => {
      this.OR2([
        { ALT: () => this.CONSUME(T.In, { LABEL: 'dir' }) },
        { ALT: () => this.CONSUME(T.Out, { LABEL: 'dir' }) },
      ]);
    });
    this.OPTION2(() => this.CONSUME(T.Quick));
    this.SUBRULE(this.ruleHead);
    this.MANY(() => this.SUBRULE(this.filterOpt));
  });

  private filterOpt = this.RULE('filterOpt', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Tagged);
          this.CONSUME(T.Word, { LABEL: 'tagged' });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Tag);
          this.CONSUME2(T.Word, { LABEL: 'tag' });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Keep);
          this.CONSUME(T.State);
          this.OPTION(() => {
            this.CONSUME(T.LParen);
            this.MANY(() => {
              this.OR2([
                { ALT: () => this.CONSUME(T.Comma) },
                { ALT: () => this.SUBRULE(this.stateOpt) },
              ]);
            });
            this.CONSUME(T.RParen);
          });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Probability);
          this.OR3([
            { ALT: () => this.CONSUME(T.Percent, { LABEL: 'probability' }) },
            { ALT: () => this.CONSUME(T.NumberLit, { LABEL: 'probability' }) },
          ]);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.RdrTo);
          this.SUBRULE(this.pool);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.NatTo);
          this.SUBRULE(this.natTarget);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Flags);
          this.CONSUME3(T.Word, { LABEL: 'flagsSet' });
          this.CONSUME(T.Slash);
          this.CONSUME4(T.Word, { LABEL: 'flagsMask' });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Label);
          this.CONSUME(T.QuotedString, { LABEL: 'label' });
        },
      },
    ]);
  });

  private stateOpt = this.RULE('stateOpt', () => {
    this.OR([
      // parse.y state_opt_item: NOSYNC takes no value (the state is not sent to pfsync peers).
      { ALT: () => this.CONSUME(T.NoSync, { LABEL: 'noSync' }) },
      {
        ALT: () => {
          this.OR2([
            { ALT: () => this.CONSUME(T.Max, { LABEL: 'name' }) },
            { ALT: () => this.CONSUME(T.Word, { LABEL: 'name' }) },
          ]);
          this.CONSUME(T.NumberLit, { LABEL: 'value' });
        },
      },
    ]);
  });
}

/** The one parser instance; parsePf() resets its input for every call. */
export const pfParser = new PfCstParser();

export type { CstNode, IToken };
